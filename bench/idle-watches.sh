#!/usr/bin/env bash
# Idle watches through Canopy: for each case, a fresh Canopy, the driver (examples/idle_watches.rs)
# opening that many watches over HTTP/2, Canopy's RSS, file descriptors and apiserver connections
# with them open, and how long one write takes to reach every watch. The `direct` cases are the
# baseline: the same driver, watches and write straight at the apiserver (admin credentials), no
# Canopy. Bounded: each driver run gives up after BENCH_WATCH_SECONDS. Prints a markdown table.
#
#   bash bench/idle-watches.sh
#   BENCH_HARNESS_DIR=/abs/run/dir bash bench/idle-watches.sh   # use (and leave) a running harness
#   BENCH_IDLE_CASES="direct:10000 http2:10000 streams:10000" bash bench/idle-watches.sh
#   BENCH_PERF=1 bash bench/idle-watches.sh   # also perf record -g Canopy while the write fans out
# A case is UPSTREAM:WATCHES, UPSTREAM one of direct, http1, http2, streams (upstream.protocol),
# the admin watching at the root view (no translation); `-view` after http1, http2 or streams
# (e.g. streams-view:10000) has bob watch the namespace inside his node's view instead
# (`idle` owning `watches`, upstream idle-watches), so that each event is translated.
# HARNESS_HTTP2_MAX_STREAMS=1000 starts the harness's apiserver allowing 1,000 streams a connection.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
run="$root/bench/.run/idle"
cases="${BENCH_IDLE_CASES:-direct:1000 http2:1000 http1:1000 direct:10000 http2:10000 streams:10000}"
threads="${BENCH_CANOPY_THREADS:-2}"
seconds="${BENCH_WATCH_SECONDS:-300}"
perf="${BENCH_PERF:-0}"
harness_dir="${BENCH_HARNESS_DIR:-$root/bench/.run/harness}"
keep="${BENCH_HARNESS_DIR:+1}"

log() { echo "[idle-watches] $*" >&2; }
. bench/lib.sh # stop_pid, need_command, release_harness, start_harness, start_canopy

canopy_pid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid canopy "$canopy_pid"
	release_harness "$harness_dir" "${keep:-${BENCH_KEEP:-0}}"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$run"
start_harness "$harness_dir"
[ "${BENCH_BUILD:-1}" = 1 ] && cargo build --release --quiet --bin canopy --example idle_watches # BENCH_BUILD=0: the binaries as built
[ "$perf" = 1 ] && need_command perf linux-perf

echo "| upstream, watches | open | opening took | Canopy RSS | RSS per watch | Canopy fds | upstream connections | load at the write | saw the write | p50 ms | p99 ms | max ms | Canopy CPU for the fan-out |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for case in $cases; do
	protocol="${case%%:*}"
	watches="${case##*:}"
	profile=()
	user=admin token="$TOKEN_ADMIN" watch_namespace=idle-watches canopy_extra_yaml=""
	if [ "${protocol%-view}" != "$protocol" ]; then
		user=bob token="$TOKEN_BOB" watch_namespace=watches
		canopy_extra_yaml="$(printf '%s\n' "tree:" "  domain: canopy.dev" "  nodes:" "    - name: idle" \
			"      members: [{kind: User, name: bob, role: edit}]" "      namespaces: [watches]")"
	fi
	if [ "$protocol" = direct ]; then
		watch_kubeconfig="$ADMIN_KUBECONFIG"
		pid_args=()
		log "direct, $watches watches (no Canopy)"
	else
		start_canopy "$run" "$threads" "${protocol%-view}"
		watch_kubeconfig="$run/$user.kubeconfig"
		target/release/canopy kubeconfig --config "$run/canopy.yaml" --user "$user" --token "$token" >"$watch_kubeconfig"
		pid_args=(--canopy-pid "$canopy_pid")
		if [ "$perf" = 1 ]; then
			profile=(--before-write "perf record -q -g -F 999 -p $canopy_pid -o $run/perf-$protocol-$watches.data -- sleep 4 2>/dev/null")
		fi
		log "$protocol, $watches watches (canopy pid $canopy_pid, $threads threads)"
	fi
	target/release/examples/idle_watches --watch-kubeconfig "$watch_kubeconfig" "${pid_args[@]}" \
		--admin-kubeconfig "$ADMIN_KUBECONFIG" --apiserver-port "${KUBE_SERVER##*:}" \
		--namespace idle-watches --watch-namespace "$watch_namespace" --watches "$watches" --seconds "$seconds" --label "$protocol, $watches" "${profile[@]}"
	[ "$perf" = 1 ] && [ "$protocol" != direct ] && log "profile: perf report -i $run/perf-$protocol-$watches.data"
	stop_pid canopy "$canopy_pid"
	canopy_pid=""
done
