# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables here are read by the scripts that source this file
# Shared by the cross/ scripts: the table of supported targets, the paths
# they build into, and the one way they talk to the operator (stderr,
# subject first, then a hint at the fix). Sourced, never run.

CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(dirname "$CROSS_DIR")

# Everything cross-built lives under target/cross so that host builds in
# target/debug and target/release are never invalidated by these flags.
CROSS_TARGET_DIR=${CROSS_TARGET_DIR:-$REPO_DIR/target/cross}

# Debian's toolchain, not rustup's: it ships the standard library's source,
# which -Zbuild-std needs for targets rustup cannot download here.
DEBIAN_RUSTC=/usr/bin/rustc
DEBIAN_CARGO=/usr/bin/cargo

# One row per target:
#   triple | C compiler | qemu runner | Debian arch (for .deb) | libc
# The C compiler builds the unwinder shim here; .cargo/config.toml names the
# same one as the target's linker and CC, and the two must agree.
TARGET_TABLE='
mipsel-unknown-linux-musl      | mipsel-linux-musl-gcc     | qemu-mipsel-static  | mipsel | musl
armv7-unknown-linux-musleabihf | arm-linux-musleabihf-gcc  | qemu-arm-static     | armhf  | musl
aarch64-unknown-linux-musl     | aarch64-linux-musl-gcc    | qemu-aarch64-static | arm64  | musl
x86_64-unknown-linux-musl      | x86_64-linux-musl-gcc     | -                   | amd64  | musl
mips-unknown-linux-gnu         | mips-linux-gnu-gcc        | qemu-mips-static    | -      | gnu
'

# Size budgets for mipsel, in bytes: what a 16 MiB-flash router can spare.
BUDGET_TLS=$((2304 * 1024))   # 2.25 MiB
BUDGET_NO_TLS=$((1536 * 1024)) # 1.5 MiB

say() { printf '%s\n' "$*" >&2; }

die() {
	# $1: what failed, subject first; $2: a hint at the fix.
	say "$1"
	[ -n "${2:-}" ] && say "  hint: $2"
	exit 1
}

# target_field TRIPLE COLUMN prints one column (1-based) of the table row.
target_field() {
	local triple=$1 column=$2 value
	value=$(printf '%s\n' "$TARGET_TABLE" | awk -F'|' -v t="$triple" -v c="$column" '
		{ for (i = 1; i <= NF; i++) gsub(/ /, "", $i) }
		$1 == t { print $c }')
	[ -n "$value" ] || die "target $triple: not supported" \
		"pick one of: $(known_targets | paste -sd ' ')"
	printf '%s\n' "$value"
}

known_targets() {
	printf '%s\n' "$TARGET_TABLE" | awk -F'|' 'NF > 1 { gsub(/ /, "", $1); print $1 }'
}

# The directory holding libunwind.a and the shim object for one target.
unwind_dir() { printf '%s/unwind/%s\n' "$CROSS_TARGET_DIR" "$1"; }

# cargo's own target directory: one for every target and feature set, so
# switching between TLS and no-TLS reuses the dependencies already built.
cargo_dir() { printf '%s/cargo\n' "$CROSS_TARGET_DIR"; }

# Where a finished binary is kept, per target and flavour ("tls" or "no-tls"),
# so that a later build of the other flavour does not overwrite it.
binary_path() { printf '%s/bin/%s/%s/m3u-proxy\n' "$CROSS_TARGET_DIR" "$1" "$2"; }

# The upper-cased, underscored triple cargo uses in CARGO_TARGET_* names.
triple_env() { printf '%s\n' "$1" | tr 'a-z-' 'A-Z_'; }
