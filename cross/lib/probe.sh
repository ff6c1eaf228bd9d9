# shellcheck shell=bash
# A quick probe of a cross-built binary before the real black-box test:
# is it static, does it start under qemu, answer /livez on loopback and stop
# cleanly on SIGTERM. Sourced by cross/run after lib/common.sh.

# How long qemu gets to start the server and to stop it, in tenths of a second.
PROBE_START_TENTHS=200
PROBE_STOP_TENTHS=100

require_static() {
	local triple=$1 bin=$2
	if readelf -lW "$bin" | grep -q 'program interpreter'; then
		die "check $triple: $bin is dynamically linked" \
			"the rustflags for $triple in .cargo/config.toml must keep +crt-static"
	fi
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# probe_binary TRIPLE BIN RUNNER; RUNNER may be empty (host CPU).
probe_binary() {
	local triple=$1 bin=$2 runner=$3 work port pid status tenths run=()
	[ -n "$runner" ] && run=("$runner")
	require_static "$triple" "$bin"
	work=$(mktemp -d)

	"${run[@]}" "$bin" --version >"$work/version" 2>&1 ||
		die "check $triple: --version failed: $(head -c 300 "$work/version")" \
			"run it by hand: ${runner:+$runner }$bin --version"
	"${run[@]}" "$bin" --help >"$work/help" 2>&1 ||
		die "check $triple: --help failed: $(head -c 300 "$work/help")" \
			"run it by hand: ${runner:+$runner }$bin --help"
	say "check $triple: --version says $(head -n 1 "$work/version")"

	port=$(free_port)
	"${run[@]}" "$bin" --host 127.0.0.1 --port "$port" --state-file "$work/state.json" \
		>"$work/log" 2>&1 &
	pid=$!

	tenths=0
	until curl -fsS -o /dev/null "http://127.0.0.1:$port/livez" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null || [ "$tenths" -ge "$PROBE_START_TENTHS" ]; then
			kill "$pid" 2>/dev/null || true
			say "check $triple: server log:"
			tail -n 20 "$work/log" >&2
			die "check $triple: no answer on http://127.0.0.1:$port/livez" \
				"the log above says why; a crash at start under qemu often means a missing syscall"
		fi
		sleep 0.1
		tenths=$((tenths + 1))
	done
	say "check $triple: /livez answered under ${runner:-the host CPU}"

	kill -TERM "$pid"
	tenths=0
	while kill -0 "$pid" 2>/dev/null && [ "$tenths" -lt "$PROBE_STOP_TENTHS" ]; do
		sleep 0.1
		tenths=$((tenths + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		die "check $triple: still running $((PROBE_STOP_TENTHS / 10)) s after SIGTERM" \
			"the server must drain and exit on SIGTERM"
	fi
	status=0
	wait "$pid" || status=$?
	[ "$status" = 0 ] || die "check $triple: exit status $status after SIGTERM" \
		"a clean shutdown exits 0; $status = 128 + signal means SIGTERM was not handled"
	say "check $triple: stopped cleanly on SIGTERM"
	rm -rf "$work"
}
