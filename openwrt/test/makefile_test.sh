#!/usr/bin/env bash
# Tests the package Makefile's own logic off a buildroot: the version read
# from Cargo.toml, the TLS option mapped to cargo features, and the source
# copy of Build/Prepare (no .cargo, target or .git). A stand-in TOPDIR gives
# it just enough of OpenWrt's make helpers; the real build needs an SDK.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pkg=$(dirname "$here")/m3u-proxy
repo=$(dirname "$(dirname "$here")")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

mkdir -p "$work/top/include" "$work/top/feeds/packages/lang/rust"
cat >"$work/top/rules.mk" <<'MK'
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
CP:=cp -fpR
MK
# BuildPackage here only turns the package's definitions into three targets.
cat >"$work/top/include/package.mk" <<'MK'
define BuildPackage
show:
	@echo 'version=$$(PKG_VERSION) features=$$(RUST_PKG_FEATURES) depends=$$(PKG_BUILD_DEPENDS)'
prepare:
	$$(Build/Prepare)
compile:
	$$(Build/Compile)
endef
MK
cat >"$work/top/feeds/packages/lang/rust/rust-package.mk" <<'MK'
RUST_ARCH_DEPENDS:=@(mipsel||arm||aarch64)
define Build/Compile/Cargo
	@echo cargo install $(if $(strip $(RUST_PKG_FEATURES)),--features "$(strip $(RUST_PKG_FEATURES))") $(2)
endef
RustBinPackage=
MK

pkg_make() {
	make --no-print-directory -C "$pkg" TOPDIR="$work/top" INCLUDE_DIR="$work/top/include" "$@" 2>&1
}

expect() {
	if [ "$2" = "$3" ]; then
		passed=$((passed + 1))
		echo "ok   $1"
	else
		failed=$((failed + 1))
		printf 'FAIL %s\n     expected: %s\n     got:      %s\n' "$1" "$2" "$3"
	fi
}

version=$(sed -n '/^version *=/{s/^[^"]*"\([^"]*\)".*/\1/p;q}' "$repo/Cargo.toml")
expect "version from Cargo.toml; TLS on" "version=$version features=tls depends=rust/host" \
	"$(pkg_make CONFIG_M3U_PROXY_TLS=y show)"
expect "TLS off: no features" "version=$version features= depends=rust/host" "$(pkg_make show)"
expect "TLS on: cargo gets --features tls, never the crate's defaults" \
	'cargo install --features tls --no-default-features' "$(pkg_make CONFIG_M3U_PROXY_TLS=y compile)"
expect "TLS off: cargo gets no feature at all" 'cargo install --no-default-features' \
	"$(pkg_make compile)"

pkg_make PKG_BUILD_DIR="$work/build" prepare >"$work/prepare.log" || cat "$work/prepare.log"
copied=$(for f in Cargo.toml Cargo.lock src .cargo target .git; do
	if [ -e "$work/build/$f" ]; then echo "$f"; fi
done | paste -sd ' ')
expect "Build/Prepare copies the crate, not .cargo, target or .git" "Cargo.toml Cargo.lock src" "$copied"

status=0
out=$(pkg_make PKG_BUILD_DIR="$work/build2" M3U_PROXY_SRC=/nonexistent prepare) || status=$?
expect "no checkout at M3U_PROXY_SRC: prepare fails and says what to set" "failed: yes" \
	"failed: $([ "$status" != 0 ] && grep -q 'set M3U_PROXY_SRC' <<<"$out" && echo yes)"

echo "makefile_test: $passed passed, $failed failed"
[ "$failed" = 0 ]
