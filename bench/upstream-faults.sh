#!/usr/bin/env bash
# Upstream faults under load: a harness of its own (its apiserver is paused and killed), a fresh
# Canopy in front of it, and the driver (examples/upstream_faults.rs): clients GET and LIST
# configmaps and hold watches open through Canopy while the apiserver process is paused
# (SIGSTOP, BENCH_PAUSE_SECONDS, then SIGCONT) and later killed (SIGKILL) and restarted on the
# same port (integration-tests/up.sh on the same run dir: same port, certificates and etcd data).
# Prints a markdown table of what the clients saw, then whether Canopy survived. Bounded: the
# driver gives up after BENCH_FAULT_SECONDS.
#
#   bash bench/upstream-faults.sh
#   BENCH_CLIENTS=16 BENCH_WATCHES=200 bash bench/upstream-faults.sh
#   BENCH_FAULT_HARNESS_DIR=/abs/run/dir bash bench/upstream-faults.sh   # never a shared harness
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
run="$root/bench/.run/faults"
harness_dir="${BENCH_FAULT_HARNESS_DIR:-$root/bench/.run/faults-harness}"
clients="${BENCH_CLIENTS:-8}"
watches="${BENCH_WATCHES:-50}"
pause="${BENCH_PAUSE_SECONDS:-10}"
settle="${BENCH_SETTLE_SECONDS:-10}"
seconds="${BENCH_FAULT_SECONDS:-300}"
# Canopy's upstream timeouts: short, so that the pause is noticed within it.
response_timeout="${BENCH_RESPONSE_TIMEOUT:-3}"
keepalive_interval="${BENCH_KEEPALIVE_INTERVAL:-2}"
keepalive_timeout="${BENCH_KEEPALIVE_TIMEOUT:-2}"
protocol="${BENCH_UPSTREAM_PROTOCOL:-streams}"

log() { echo "[upstream-faults] $*" >&2; }
. bench/lib.sh # stop_pid, release_harness, start_harness, start_canopy

canopy_pid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# A paused harness would never stop.
	[ -n "${HARNESS_PID:-}" ] && kill -CONT "$HARNESS_PID" 2>/dev/null || true
	stop_pid canopy "$canopy_pid"
	release_harness "$harness_dir" "${BENCH_KEEP:-0}"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$run"
start_harness "$harness_dir"
[ "${BENCH_BUILD:-1}" = 1 ] && cargo build --release --quiet --bin canopy --example upstream_faults # BENCH_BUILD=0: the binaries as built
admin=("$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG")
"${admin[@]}" create namespace upstream-faults --dry-run=client -o yaml | "${admin[@]}" apply -f - >/dev/null
"${admin[@]}" -n upstream-faults create configmap cm-0 --from-literal=a=b --dry-run=client -o yaml |
	"${admin[@]}" apply -f - >/dev/null
start_canopy "$run" 2 "$protocol" "responseTimeoutSeconds: $response_timeout" \
	"keepAliveIntervalSeconds: $keepalive_interval" "keepAliveTimeoutSeconds: $keepalive_timeout"
log "canopy pid $canopy_pid ($protocol upstream, responseTimeoutSeconds $response_timeout, keep-alive ${keepalive_interval}s + ${keepalive_timeout}s); $clients clients, $watches watches, pause ${pause}s"
target/release/examples/upstream_faults --canopy-url "https://127.0.0.1:$canopy_port" --canopy-ca "$run/tls/ca.crt" \
	--token "$TOKEN_ADMIN" --apiserver-url "$KUBE_SERVER" --apiserver-ca "$KUBE_CA_FILE" \
	--apiserver-pid "$HARNESS_PID" --restart "integration-tests/up.sh $harness_dir >/dev/null" \
	--namespace upstream-faults --clients "$clients" --watches "$watches" --pause-seconds "$pause" \
	--settle-seconds "$settle" --seconds "$seconds"
# The restarted harness has a new pid.
HARNESS_PID="$(cat "$harness_dir/harness.pid")"
if kill -0 "$canopy_pid" 2>/dev/null; then
	echo
	echo "Canopy crashes: 0 (pid $canopy_pid still serving: $(curl -s "http://127.0.0.1:$canopy_admin_port/readyz"))"
else
	echo
	echo "Canopy crashes: 1 (pid $canopy_pid is gone); last lines of its log:"
	tail -n 20 "$run/canopy.log"
fi
echo "panics in the log: $(grep -c panicked "$run/canopy.log" || true)"
