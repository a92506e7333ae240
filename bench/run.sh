#!/usr/bin/env bash
# Canopy benchmark: the real apiserver directly vs through Canopy vs through `kubectl proxy`,
# driven by wrk. Starts everything it needs, stops everything it started on exit, and writes
# the figures into bench/RESULTS.md. See bench/README.md.
#
#   bash bench/run.sh                  # 10 s per cell
#   BENCH_SECONDS=5 bash bench/run.sh  # shorter
#   BENCH_KEEP=1 bash bench/run.sh     # leave the harness (apiserver) running afterwards
#   BENCH_PIN=1 bash bench/run.sh      # the harness on CPU 0; proxies and wrk on the others
#   BENCH_CANOPY_THREADS=1 bash bench/run.sh  # Canopy with server.workerThreads: 1
#   BENCH_PERF=1 bash bench/run.sh     # then split Canopy's and the relay's CPU with perf
#   BENCH_UPSTREAM_PROTOCOL=http1 bash bench/run.sh  # Canopy and the relay speak HTTP/1.1 upstream
#                                                    # (streams, Canopy's default, unless set; or http2)
#   BENCH_HARNESS_DIR=/abs/dir bash bench/run.sh     # use (and leave running) that harness
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
run="$root/bench/.run"
harness_dir="${BENCH_HARNESS_DIR:-$run/harness}"
seconds="${BENCH_SECONDS:-10}"
warmup="${BENCH_WARMUP:-2}"
keep="${BENCH_KEEP:-${BENCH_HARNESS_DIR:+1}}"
keep="${keep:-0}"
upstream_protocol="${BENCH_UPSTREAM_PROTOCOL:-streams}"
pin="${BENCH_PIN:-0}"
canopy_threads="${BENCH_CANOPY_THREADS:+  workerThreads: $BENCH_CANOPY_THREADS}"
perf_split="${BENCH_PERF:-0}"

# The command as typed, with the knobs that were set, for RESULTS.md.
command="bash bench/run.sh${*:+ $*}"
for knob in BENCH_WARMUP BENCH_KEEP BENCH_SECONDS BENCH_PIN BENCH_CANOPY_THREADS BENCH_PERF BENCH_UPSTREAM_PROTOCOL; do
	if [ -n "${!knob:-}" ]; then command="$knob=${!knob} $command"; fi
done

log() { echo "[bench] $*" >&2; }

canopy_pid=""
proxy_pid=""
relay_pid=""
driver_pid=""

. bench/lib.sh # stop_pid, need_command, release_harness

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
		pkill -TERM -P "$driver_pid" 2>/dev/null || true # its wrk, if one is running
		stop_pid driver "$driver_pid"
	fi
	stop_pid "kubectl proxy" "$proxy_pid"
	stop_pid "bare relay" "$relay_pid"
	stop_pid canopy "$canopy_pid"
	if [ -n "${HARNESS_PID:-}" ] && [ "$pin" = 1 ]; then
		taskset -a -p -c "0-$(($(nproc) - 1))" "$HARNESS_PID" >/dev/null 2>&1 || true
	fi
	release_harness "$harness_dir" "$keep"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. wrk
need_command wrk wrk

mkdir -p "$run"

# 2. Harness (real kube-apiserver + etcd), Canopy, kubectl proxy
log "starting the harness in ${harness_dir#"$root"/} (first build takes minutes)"
env_file="$(integration-tests/up.sh "$harness_dir")"
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a

log "building canopy (release)"
cargo build --release --quiet --bin canopy --example bare_relay
canopy_bin="$root/target/release/canopy"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
canopy_port="$(free_port)"
admin_port="$(free_port)"
proxy_port="$(free_port)"
relay_port="$(free_port)"
while [ "$admin_port" = "$canopy_port" ]; do admin_port="$(free_port)"; done
while [ "$proxy_port" = "$canopy_port" ] || [ "$proxy_port" = "$admin_port" ]; do proxy_port="$(free_port)"; done
while [ "$relay_port" = "$canopy_port" ] || [ "$relay_port" = "$admin_port" ] || [ "$relay_port" = "$proxy_port" ]; do
	relay_port="$(free_port)"
done

cat >"$run/canopy.yaml" <<EOF
server:
$canopy_threads
  listen: 127.0.0.1:$canopy_port
  adminListen: 127.0.0.1:$admin_port
  tls:
    generatedDir: $run/canopy-tls
upstream:
  kubeconfig: $CANOPY_UPSTREAM_KUBECONFIG
  protocol: $upstream_protocol
authentication:
  tokenReview: {cacheTtlSeconds: 120}
EOF

log "starting canopy on 127.0.0.1:$canopy_port (admin $admin_port), log bench/.run/canopy.log"
CANOPY_LOG="${CANOPY_LOG:-warn,rustls=error}" "$canopy_bin" serve --config "$run/canopy.yaml" >"$run/canopy.log" 2>&1 &
canopy_pid=$!

# The machine's kubectl is the peer; the harness-built one is the fallback.
proxy_kubectl="$(command -v kubectl || echo "$KUBECTL")"
log "starting kubectl proxy on 127.0.0.1:$proxy_port, log bench/.run/kubectl-proxy.log"
"$proxy_kubectl" proxy --address=127.0.0.1 --port="$proxy_port" --kubeconfig="$ADMIN_KUBECONFIG" \
	>"$run/kubectl-proxy.log" 2>&1 &
proxy_pid=$!

# The floor of Canopy's stack: the same parts relaying as the harness's admin identity (the
# identity behind TOKEN_ADMIN, which the other targets are driven with).
log "starting the bare relay on 127.0.0.1:$relay_port, log bench/.run/bare-relay.log"
"$root/target/release/examples/bare_relay" --listen "127.0.0.1:$relay_port" \
	--kubeconfig "$CANOPY_UPSTREAM_KUBECONFIG" --user admin --group system:masters --group system:authenticated --upstream-protocol "$upstream_protocol" \
	>"$run/bare-relay.log" 2>&1 &
relay_pid=$!

wait_http() { # NAME PID URL: up to 60 s for a 200
	local name="$1" pid="$2" url="$3"
	for _ in $(seq 300); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$name exited; its log:"
			tail -n 30 "$run/$name.log" >&2
			exit 1
		fi
		if [ "$(curl -sk -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then return 0; fi
		sleep 0.2
	done
	log "$name not ready after 60s ($url); its log:"
	tail -n 30 "$run/$name.log" >&2
	exit 1
}
wait_http canopy "$canopy_pid" "http://127.0.0.1:$admin_port/readyz"
wait_http kubectl-proxy "$proxy_pid" "http://127.0.0.1:$proxy_port/readyz"
wait_http bare-relay "$relay_pid" "https://127.0.0.1:$relay_port/readyz"
log "canopy (pid $canopy_pid), kubectl proxy (pid $proxy_pid) and the bare relay (pid $relay_pid) ready; harness pid $HARNESS_PID"

server_version="$(curl -s --cacert "$KUBE_CA_FILE" -H "Authorization: Bearer $TOKEN_ADMIN" "$KUBE_SERVER/version" |
	python3 -c 'import json,sys; print(json.load(sys.stdin).get("gitVersion","?"))' 2>/dev/null || echo "?")"
proxy_version="$("$proxy_kubectl" version --client -o json 2>/dev/null |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' 2>/dev/null || echo "?")"
canopy_rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo "+uncommitted changes")"
wrk_version="$(wrk --version 2>&1 | head -n1 | awk '{print $2}' || true)"
versions="- Versions: kube-apiserver $server_version; kubectl proxy $proxy_version; canopy $canopy_rev (release build); wrk $wrk_version"

# Pinned, the proxies cannot take CPU from the apiserver: what is left of the gap to direct is
# the proxy's own latency, not a share of two cores. wrk runs on the proxies' CPUs.
driver_cpus=""
pinned=""
if [ "$pin" = 1 ]; then
	last=$(($(nproc) - 1))
	[ "$last" -ge 1 ] || { log "BENCH_PIN=1 needs 2 CPUs or more"; exit 1; }
	taskset -a -p -c 0 "$HARNESS_PID" >/dev/null
	taskset -a -p -c "1-$last" "$canopy_pid" >/dev/null
	taskset -a -p -c "1-$last" "$proxy_pid" >/dev/null
	taskset -a -p -c "1-$last" "$relay_pid" >/dev/null
	driver_cpus="taskset -c 1-$last"
	pinned="harness (apiserver, etcd, controllers, kubelet) on CPU 0; Canopy, kubectl proxy, the bare relay and wrk on CPU 1-$last"
	log "pinned: $pinned"
fi

# 3./4. Seed, measure, report. In the background with `wait`, so that a signal to this script
# runs the cleanup at once instead of after the driver.
$driver_cpus python3 "$root/bench/driver.py" \
	--env-file "$env_file" \
	--canopy-url "https://127.0.0.1:$canopy_port" \
	--canopy-ca "$run/canopy-tls/ca.crt" \
	--canopy-pid "$canopy_pid" \
	--proxy-url "http://127.0.0.1:$proxy_port" \
	--proxy-pid "$proxy_pid" \
	--relay-url "https://127.0.0.1:$relay_port" \
	--relay-pid "$relay_pid" \
	--seconds "$seconds" \
	--warmup "$warmup" \
	--out-dir "$run/wrk" \
	--results "$root/bench/RESULTS.md" \
	--command "$command" \
	--versions "$versions" \
	--pinned "$pinned" &
driver_pid=$!
wait "$driver_pid"

# 5. Optionally, where Canopy's and the relay's CPU goes: scheduling, other kernel, user space.
if [ "$perf_split" = 1 ]; then
	need_command perf linux-perf
	log "splitting the proxies' CPU with perf"
	$driver_cpus python3 "$root/bench/split.py" \
		--env-file "$env_file" \
		--canopy-url "https://127.0.0.1:$canopy_port" \
		--canopy-pid "$canopy_pid" \
		--relay-url "https://127.0.0.1:$relay_port" \
		--relay-pid "$relay_pid" \
		--seconds "$seconds" \
		--work-dir "$run/perf" \
		--results "$root/bench/RESULTS.md" \
		--command "$command" \
		--pinned "$pinned" &
	driver_pid=$!
	wait "$driver_pid"
fi
