#!/usr/bin/env bash
# Tests openwrt/m3u-proxy/files/m3u-proxy.init off the router: sources it in
# a POSIX shell (busybox ash when installed, else dash) with stand-ins for
# procd, UCI and network.sh, runs start_service and service_triggers, and
# compares what they asked procd for with the expected command lines.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pkg=$(dirname "$here")/m3u-proxy
init=$pkg/files/m3u-proxy.init
shipped_config=$pkg/files/m3u-proxy.config

if command -v busybox >/dev/null && busybox sh -c : 2>/dev/null; then
	shell=(busybox sh)
else
	shell=(sh)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# Stand-ins, written in the same POSIX shell as the init script. procd's own
# helpers keep the instance in shell variables until procd_close_instance,
# so these do too: a call made in a subshell is lost here as it would be on
# the router.
cat >"$work/stubs.sh" <<'STUBS'
_log=''
_record() { _log="$_log$*
"; }
_args() { for _a in "$@"; do printf ' [%s]' "$_a"; done; }

procd_open_instance() { _record "instance"; }
procd_close_instance() { _record "end"; }
procd_set_param() { _k=$1; shift; _record "$_k$(_args "$@")"; }
procd_append_param() { _k=$1; shift; _record "+$_k$(_args "$@")"; }
procd_add_reload_trigger() { _record "reload_trigger$(_args "$@")"; }
procd_add_reload_interface_trigger() { _record "interface_trigger$(_args "$@")"; }
logger() { _record "logger$(_args "$@")"; }
mkdir() { _record "mkdir$(_args "$@")"; }
chown() { _record "chown$(_args "$@")"; }

config_load() { _config=$UCI_DIR/$1; }

# config_get VAR SECTION OPTION [DEFAULT], from a UCI file: enough of UCI's
# syntax for one-line options quoted with ' or ".
config_get() {
	_value=$(awk -v s="$2" -v o="$3" -v q="['\"]" '
		$1 == "config" { gsub(q, "", $3); in_section = ($3 == s) }
		in_section && $1 == "option" && $2 == o {
			sub(/^[ \t]*option[ \t]+[^ \t]+[ \t]+/, ""); gsub("^" q "|" q "$", "")
			print; exit
		}' "$_config")
	[ -n "$_value" ] || _value=${4:-}
	eval "$1=\$_value"
}

config_get_bool() {
	config_get "$@"
	eval "_value=\$$1"
	case $_value in
	1 | on | true | yes | enabled) eval "$1=1" ;;
	*) eval "$1=0" ;;
	esac
}
STUBS

mkdir -p "$work/root/lib/functions"
cat >"$work/root/lib/functions/network.sh" <<'NETWORK'
network_get_ipaddr() {
	_record "network_get_ipaddr [$2]"
	case $2 in
	lan) eval "$1=\$STUB_LAN_IP" ;;
	guest) eval "$1=10.0.3.1" ;;
	*) eval "$1=" ;;
	esac
	eval "[ -n \"\$$1\" ]"
}
NETWORK

# run_init CONFIG_FILE LAN_IP FUNCTION prints what FUNCTION asked for, then
# the status it returned.
run_init() {
	mkdir -p "$work/uci"
	cp "$1" "$work/uci/m3u-proxy"
	# shellcheck disable=SC2016 # the inner shell expands these
	UCI_DIR=$work/uci STUB_LAN_IP=$2 IPKG_INSTROOT=$work/root "${shell[@]}" -c '
		. "$1"; . "$2"
		status=0
		"$3" || status=$?
		printf "%s" "$_log"
		echo "status $status"' sh "$work/stubs.sh" "$init" "$3"
}

# expect NAME EXPECTED ACTUAL
expect() {
	if [ "$2" = "$3" ]; then
		passed=$((passed + 1))
		echo "ok   $1"
	else
		failed=$((failed + 1))
		echo "FAIL $1"
		diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | sed 's/^/     /' || true
	fi
}

# config LINE... writes a UCI file of its own and prints its path.
config() {
	local file
	file=$(mktemp -p "$work" case.XXXX)
	printf '%s\n' "$@" >"$file"
	echo "$file"
}

full=$(config "config m3u-proxy 'main'" \
	"	option enabled '1'" \
	"	option host 'lan'" \
	"	option port '8085'" \
	"	option api_token 's3cret'" \
	"	option client_timeout '30'" \
	"	option default_user_agent \"VLC/3.0.20 LibVLC/3.0.20\"" \
	"	option live_chunk_timeout_seconds '15'" \
	"	option failover_cycles '2'")
expect "every option becomes its flag, the token an environment variable" "\
network_get_ipaddr [lan]
mkdir [-p] [/etc/m3u-proxy]
chown [m3u-proxy:m3u-proxy] [/etc/m3u-proxy]
instance
command [/usr/bin/m3u-proxy]
+command [--host] [192.168.1.1]
+command [--port] [8085]
+env [API_TOKEN=s3cret]
+command [--client-timeout] [30]
+command [--default-user-agent] [VLC/3.0.20 LibVLC/3.0.20]
+command [--live-chunk-timeout-seconds] [15]
+command [--state-file] [/etc/m3u-proxy/state.json]
+command [--failover-cycles] [2]
user [m3u-proxy]
limits [nofile=4096 4096]
respawn [3600] [5] [5]
stdout [1]
stderr [1]
file [/etc/config/m3u-proxy]
end
status 0" "$(run_init "$full" 192.168.1.1 start_service)"

disabled=$(config "config m3u-proxy 'main'" "	option enabled '0'" "	option port '9000'")
expect "enabled 0 starts nothing" "status 0" "$(run_init "$disabled" 192.168.1.1 start_service)"

no_enabled=$(config "config m3u-proxy 'main'" "	option port '9000'")
expect "a missing enabled option counts as off" "status 0" \
	"$(run_init "$no_enabled" 192.168.1.1 start_service)"

explicit=$(config "config m3u-proxy 'main'" \
	"	option enabled 'yes'" \
	"	option host '0.0.0.0'" \
	"	option state_file '/mnt/usb/m3u-proxy/state.json'")
expect "an IP address is used as given; state_file sets the directory made" "\
mkdir [-p] [/mnt/usb/m3u-proxy]
chown [m3u-proxy:m3u-proxy] [/mnt/usb/m3u-proxy]
instance
command [/usr/bin/m3u-proxy]
+command [--host] [0.0.0.0]
+command [--state-file] [/mnt/usb/m3u-proxy/state.json]
user [m3u-proxy]
limits [nofile=4096 4096]
respawn [3600] [5] [5]
stdout [1]
stderr [1]
file [/etc/config/m3u-proxy]
end
status 0" "$(run_init "$explicit" 192.168.1.1 start_service)"

no_host=$(config "config m3u-proxy 'main'" "	option enabled '1'")
expect "no host option means the LAN address" "+command [--host] [192.168.1.1]" \
	"$(run_init "$no_host" 192.168.1.1 start_service | grep -- '--host')"

guest=$(config "config m3u-proxy 'main'" "	option enabled '1'" "	option host 'guest'")
expect "another interface name is looked up the same way" "\
network_get_ipaddr [guest]
+command [--host] [10.0.3.1]" "$(run_init "$guest" 192.168.1.1 start_service | grep -e '--host' -e network_)"

expect "no LAN address yet: no instance, a log line, a failed start" "\
network_get_ipaddr [lan]
logger [-t] [m3u-proxy] [host: no address for interface 'lan'; will start when it is up]
status 1" "$(run_init "$no_host" '' start_service)"

expect "triggers: config changes and the LAN interface" "\
reload_trigger [m3u-proxy]
interface_trigger [lan]
status 0" "$(run_init "$full" 192.168.1.1 service_triggers)"

expect "triggers: a fixed address follows no interface" "\
reload_trigger [m3u-proxy]
status 0" "$(run_init "$explicit" 192.168.1.1 service_triggers)"

expect "the shipped config starts nothing" "status 0" \
	"$(run_init "$shipped_config" 192.168.1.1 start_service)"

sed "s/option enabled '0'/option enabled '1'/" "$shipped_config" >"$work/shipped-on.config"
expect "the shipped config, once enabled, runs on the LAN address" "\
/usr/bin/m3u-proxy --host 192.168.1.1 --port 8085 --log-level info --state-file /etc/m3u-proxy/state.json" \
	"$(run_init "$work/shipped-on.config" 192.168.1.1 start_service |
		sed -n 's/^+\{0,1\}command //p' | tr -d '[]' | paste -sd ' ')"

# The table in the init script and the options in the shipped config name
# the same set, so no option is silently ignored or left undocumented.
table=$(sed -n "/^OPTIONS='/,/^'/p" "$init" | awk 'NF == 2 { print $1 }' | sort)
documented=$(sed -n 's/^[[:space:]]*#\{0,1\}option \([a-z_]*\) .*/\1/p' "$shipped_config" |
	grep -vx enabled | sort -u)
expect "the shipped config documents exactly the options of the table" "$table" "$documented"

# With a host build of the binary at hand, every flag of the table must be
# one that the binary knows.
if [ -n "${M3U_PROXY_BIN:-}" ]; then
	help=$("$M3U_PROXY_BIN" --help 2>&1 || true)
	unknown=$(for name in $table; do
		grep -q -- "--${name//_/-}" <<<"$help" || echo "$name"
	done)
	expect "every option is a flag in m3u-proxy --help" "" "$unknown"
fi

echo "init_test: $passed passed, $failed failed"
[ "$failed" = 0 ]
