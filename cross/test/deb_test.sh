#!/usr/bin/env bash
# Builds the arm64 .deb with cross/run (and the binary first, if it is not
# there) and checks what is inside: control fields, conffiles, maintainer
# scripts, file modes and owners, and that the binary is a static AArch64 one.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
triple=${1:-aarch64-unknown-linux-musl}
passed=0
failed=0

check() {
	# check NAME COMMAND...: one line per check; the command's stderr shows why.
	local name=$1
	shift
	if "$@" >/dev/null; then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name"
	fi
}

deb=$("$repo/cross/run" deb "$triple")
version=$(sed -n '/^version *=/{s/^[^"]*"\([^"]*\)".*/\1/p;q}' "$repo/Cargo.toml")
arch=$(dpkg-deb -f "$deb" Architecture)
info=$(dpkg-deb -I "$deb")
contents=$(dpkg-deb -c "$deb")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -R "$deb" "$work/root"

has() { grep -Eq -- "$2" <<<"$1"; }
clean_script() { test -x "$1" && shellcheck "$1"; }
is_static() { ! readelf -lW "$1" | grep -q interpreter; }

check "file name carries version and architecture" test "$(basename "$deb")" = "m3u-proxy_${version}_$arch.deb"
check "control: package name" test "$(dpkg-deb -f "$deb" Package)" = m3u-proxy
check "control: version from Cargo.toml" test "$(dpkg-deb -f "$deb" Version)" = "$version"
check "control: architecture is a Debian one" has "$arch" '^(arm64|armhf|amd64|mipsel)$'
for member in control conffiles postinst prerm postrm; do
	check "control archive holds $member" has "$info" " $member( |$)"
done
check "control: installed size is set" has "$(dpkg-deb -f "$deb" Installed-Size)" '^[0-9]+$'
check "conffiles: /etc/default/m3u-proxy" grep -qx /etc/default/m3u-proxy "$work/root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
	check "$script is executable and shellcheck clean" clean_script "$work/root/DEBIAN/$script"
done
check "binary: /usr/bin/m3u-proxy, 0755, root" has "$contents" '^-rwxr-xr-x root/root .* \./usr/bin/m3u-proxy$'
check "unit: /lib/systemd/system/m3u-proxy.service, 0644" \
	has "$contents" '^-rw-r--r-- root/root .* \./lib/systemd/system/m3u-proxy\.service$'
check "defaults: /etc/default/m3u-proxy, 0644" has "$contents" '^-rw-r--r-- root/root .* \./etc/default/m3u-proxy$'
check "nothing else is shipped" test "$(grep -c '^-' <<<"$contents")" = 3
check "binary is static" is_static "$work/root/usr/bin/m3u-proxy"
case $arch in
arm64) machine=AArch64 ;;
armhf) machine=ARM ;;
amd64) machine=X86-64 ;;
mipsel) machine=MIPS ;;
esac
check "binary is built for $arch" has "$(readelf -hW "$work/root/usr/bin/m3u-proxy")" "Machine: +$machine"
# verify_unit: systemd-analyze checks every directive, and that ExecStart is
# executable; so the copy it reads points at the extracted binary. Any output
# at all (an unknown or misspelt key is only a warning) counts as a failure.
verify_unit() {
	local unit=$work/unit/m3u-proxy.service out
	mkdir -p "$work/unit"
	sed "s|^ExecStart=/usr/bin/|ExecStart=$work/root/usr/bin/|" \
		"$work/root/lib/systemd/system/m3u-proxy.service" >"$unit"
	if ! out=$(systemd-analyze verify "$unit" 2>&1) || [ -n "$out" ]; then
		printf '%s\n' "$out" >&2
		return 1
	fi
}
if command -v systemd-analyze >/dev/null; then
	check "unit passes systemd-analyze verify" verify_unit
fi

echo "deb_test: $passed passed, $failed failed"
[ "$failed" = 0 ]
