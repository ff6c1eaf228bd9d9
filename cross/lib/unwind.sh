# shellcheck shell=bash
# Builds the libunwind.a that Rust's musl targets link (-lunwind) when
# rustup's self-contained copy is not there: the cross gcc's own unwinder,
# libgcc_eh.a, plus the _dl_find_object shim. Sourced by cross/run after
# lib/common.sh.

# build_unwind TRIPLE makes $(unwind_dir TRIPLE)/libunwind.a if it is missing
# or older than the shim's source.
build_unwind() {
	local triple=$1 cc dir eh ar shim=$CROSS_DIR/shim/dl_find_object.c

	[ "$(target_field "$triple" 5)" = musl ] || return 0

	cc=$(target_field "$triple" 2)
	dir=$(unwind_dir "$triple")
	if [ "$dir/libunwind.a" -nt "$shim" ]; then
		return 0
	fi

	command -v "$cc" >/dev/null || die "unwind $triple: C compiler $cc not found" "run cross/setup"
	eh=$("$cc" -print-file-name=libgcc_eh.a)
	[ -f "$eh" ] || die "unwind $triple: $cc has no libgcc_eh.a" "run cross/setup"
	ar=$("$cc" -print-prog-name=ar)

	mkdir -p "$dir"
	"$cc" -O2 -fPIC -c "$shim" -o "$dir/dl_find_object.o" ||
		die "unwind $triple: compiling the shim failed" "read the compiler's message above"

	# Copy first: the cross gcc's archive is shared by every build on the host.
	cp "$eh" "$dir/libunwind.a.tmp"
	chmod u+w "$dir/libunwind.a.tmp"
	"$ar" rs "$dir/libunwind.a.tmp" "$dir/dl_find_object.o"
	mv "$dir/libunwind.a.tmp" "$dir/libunwind.a"
	say "unwind $triple: built $dir/libunwind.a"
}
