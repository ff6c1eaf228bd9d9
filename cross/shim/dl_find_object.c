/* Stands in for glibc's _dl_find_object in static musl links.
 *
 * gcc 12's unwinder (libgcc_eh.a) calls _dl_find_object first to find the
 * unwind tables of an address; musl has no such function. Returning -1 says
 * "not found", and the unwinder falls back to dl_iterate_phdr, which musl
 * does provide. Only the return value is read, so the arguments are unused.
 */
struct dl_find_object;

int _dl_find_object(void *address, struct dl_find_object *result)
{
	(void)address;
	(void)result;
	return -1;
}
