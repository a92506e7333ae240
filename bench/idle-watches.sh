#!/usr/bin/env bash
# Idle watches through Canopy: for each upstream protocol and watch count, a fresh Canopy, the
# driver (examples/idle_watches.rs) opening that many watches over HTTP/2, Canopy's RSS, file
# descriptors and apiserver connections with them open, and how long one write takes to reach
# every watch. Bounded: each driver run gives up after BENCH_WATCH_SECONDS. Prints a markdown table.
#
#   bash bench/idle-watches.sh
#   BENCH_HARNESS_DIR=/abs/run/dir bash bench/idle-watches.sh   # use (and leave) a running harness
#   BENCH_IDLE_CASES="http2:1000 http2:10000 http1:1000" bash bench/idle-watches.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
run="$root/bench/.run/idle"
cases="${BENCH_IDLE_CASES:-http2:1000 http2:10000 http1:1000}"
threads="${BENCH_CANOPY_THREADS:-2}"
seconds="${BENCH_WATCH_SECONDS:-300}"
harness_dir="${BENCH_HARNESS_DIR:-$root/bench/.run/harness}"
keep="${BENCH_HARNESS_DIR:+1}"

log() { echo "[idle-watches] $*" >&2; }
. bench/lib.sh # stop_pid, release_harness

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
env_file="$(integration-tests/up.sh "$harness_dir")"
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a
cargo build --release --quiet --bin canopy --example idle_watches
apiserver_port="${KUBE_SERVER##*:}"
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "| upstream, watches | open | opening took | Canopy RSS | RSS per watch | Canopy fds | upstream connections | saw the write | p50 ms | p99 ms | max ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for case in $cases; do
	protocol="${case%%:*}"
	watches="${case##*:}"
	port="$(free_port)"
	admin_port="$(free_port)"
	cat >"$run/canopy.yaml" <<YAML
server:
  workerThreads: $threads
  listen: 127.0.0.1:$port
  adminListen: 127.0.0.1:$admin_port
  tls:
    generatedDir: $run/tls
upstream:
  kubeconfig: $CANOPY_UPSTREAM_KUBECONFIG
  protocol: $protocol
authentication:
  tokenReview: {cacheTtlSeconds: 600}
YAML
	CANOPY_LOG=warn,rustls=error target/release/canopy serve --config "$run/canopy.yaml" >"$run/canopy.log" 2>&1 &
	canopy_pid=$!
	for _ in $(seq 100); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/readyz")" = 200 ] && break
		sleep 0.2
	done
	target/release/canopy kubeconfig --config "$run/canopy.yaml" --user admin --token "$TOKEN_ADMIN" >"$run/admin.kubeconfig"
	log "$protocol, $watches watches (canopy pid $canopy_pid, $threads threads)"
	target/release/examples/idle_watches --canopy-kubeconfig "$run/admin.kubeconfig" \
		--admin-kubeconfig "$ADMIN_KUBECONFIG" --canopy-pid "$canopy_pid" --apiserver-port "$apiserver_port" \
		--namespace idle-watches --watches "$watches" --seconds "$seconds" --label "$protocol, $watches"
	stop_pid canopy "$canopy_pid"
	canopy_pid=""
done
