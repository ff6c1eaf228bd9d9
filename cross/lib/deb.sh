# shellcheck shell=bash
# Packs a cross-built binary, the systemd unit and its defaults file into a
# .deb with dpkg-deb, from a staged tree under target/cross/deb. The version
# comes from Cargo.toml. Sourced by cross/run after lib/common.sh.

# crate_field NAME prints a string field of Cargo.toml's [package] table.
crate_field() {
	awk -v key="$1" '
		/^\[/ { in_package = ($0 == "[package]") }
		in_package && $1 == key && $2 == "=" {
			sub(/^[^"]*"/, ""); sub(/".*$/, ""); print; exit
		}' "$MANIFEST"
}

tls_line() {
	if [ "$1" = tls ]; then
		echo "This build fetches https:// sources and delivers webhooks over HTTPS."
	else
		echo "This build has no TLS: http:// sources and webhooks only."
	fi
}

# stage_deb TRIPLE FLAVOUR ARCH DIR lays out the package's files under DIR.
stage_deb() {
	local triple=$1 flavour=$2 arch=$3 dir=$4 version src=$CROSS_DIR/debian
	version=$(crate_field version)
	[ -n "$version" ] || die "deb: no version in $MANIFEST" "add version = \"X.Y.Z\" to [package]"

	rm -rf "$dir"
	install -D -m 0755 "$(binary_path "$triple" "$flavour")" "$dir/usr/bin/m3u-proxy"
	install -D -m 0644 "$src/m3u-proxy.service" "$dir/lib/systemd/system/m3u-proxy.service"
	install -D -m 0644 "$src/m3u-proxy.default" "$dir/etc/default/m3u-proxy"
	install -d -m 0755 "$dir/DEBIAN"
	for script in postinst prerm postrm; do
		install -m 0755 "$src/$script" "$dir/DEBIAN/$script"
	done
	printf '/etc/default/m3u-proxy\n' >"$dir/DEBIAN/conffiles"

	cat >"$dir/DEBIAN/control" <<CONTROL
Package: m3u-proxy
Version: $version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-m3u-proxy maintainers <m3u-proxy@localhost>}
Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)
Section: net
Priority: optional
Description: IPTV stream proxy for routers and small boards
 A single static binary that relays MPEG-TS, VOD and HLS streams to players
 on the local network, switches to backup sources when one fails, and
 reports what is watched through events and webhooks.
 $(tls_line "$flavour")
CONTROL
}

do_deb() {
	local triple=$1 flavour=$2 arch dir out
	arch=$(target_field "$triple" 4)
	[ "$arch" != - ] || die "deb $triple: no Debian architecture for this target" \
		"build .debs for aarch64-unknown-linux-musl or armv7-unknown-linux-musleabihf"
	# Its size line goes to stderr: stdout carries only the .deb's path.
	[ -x "$(binary_path "$triple" "$flavour")" ] || do_build "$triple" "$flavour" >&2

	dir=$CROSS_TARGET_DIR/deb/stage-$arch
	stage_deb "$triple" "$flavour" "$arch" "$dir"
	out=$CROSS_TARGET_DIR/deb/m3u-proxy_$(crate_field version)_$arch.deb
	dpkg-deb --root-owner-group -Zxz --build "$dir" "$out" >/dev/null ||
		die "deb $triple: dpkg-deb failed" "read its message above"
	printf '%s\n' "$out"
}
