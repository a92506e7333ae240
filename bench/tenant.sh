#!/usr/bin/env bash
# Tenant-scale benchmark: a tenant owning 100 of 2,000 namespaces (10 ConfigMaps each). Measures
# the tenant's `-A` list and `-A` watch of ConfigMaps through Canopy (which fans out one request
# per namespace of the view) against the same lists made directly as admin. Starts its own
# harness in bench/.run/tenant/harness and its own Canopy, stops both on exit (also on failure),
# and writes the figures into the "tenant" section of bench/RESULTS.md. See bench/README.md.
#
#   bash bench/tenant.sh                  # 10 s per cell
#   BENCH_SECONDS=5 bash bench/tenant.sh  # shorter
#   BENCH_KEEP=1 bash bench/tenant.sh     # leave the harness (and its 22,000 objects) running
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
run="$root/bench/.run/tenant"
harness_dir="$run/harness"
seconds="${BENCH_SECONDS:-10}"
warmup="${BENCH_WARMUP:-2}"
keep="${BENCH_KEEP:-0}"
tenant_ns="${BENCH_TENANT_NAMESPACES:-100}"
total_ns="${BENCH_NAMESPACES:-2000}"
per_ns="${BENCH_CONFIGMAPS:-10}"
burst="${BENCH_WATCH_WRITES:-1000}"
results="${BENCH_RESULTS:-$root/bench/RESULTS.md}" # where the figures go (a trial run can point elsewhere)

command="bash bench/tenant.sh${*:+ $*}"
for knob in BENCH_CONFIGMAPS BENCH_NAMESPACES BENCH_TENANT_NAMESPACES BENCH_WATCH_WRITES BENCH_WARMUP BENCH_KEEP BENCH_SECONDS; do
	if [ -n "${!knob:-}" ]; then command="$knob=${!knob} $command"; fi
done

log() { echo "[tenant] $*" >&2; }

canopy_pid=""
driver_pid=""

. bench/lib.sh # stop_pid, need_command, release_harness

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
		pkill -TERM -P "$driver_pid" 2>/dev/null || true # its wrk, if one is running
		stop_pid driver "$driver_pid"
	fi
	stop_pid canopy "$canopy_pid"
	release_harness "$harness_dir" "$keep"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_command wrk wrk
mkdir -p "$run"

log "starting the harness in bench/.run/tenant/harness"
env_file="$(integration-tests/up.sh "$harness_dir")"
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a

built_bin="$root/target/release/canopy"
if [ ! -x "$built_bin" ]; then
	log "building canopy (release)"
	cargo build --release --quiet --bin canopy
fi
# A private copy: a build in the shared target dir during the run cannot change what is measured.
canopy_bin="$run/canopy"
cp -p "$built_bin" "$canopy_bin"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
canopy_port="$(free_port)"
admin_port="$(free_port)"
while [ "$admin_port" = "$canopy_port" ]; do admin_port="$(free_port)"; done

# The tree: node `big` owns big-t000 … big-tNNN, bob is its editor. The other namespaces are
# created by the driver as admin and belong to no node.
{
	cat <<EOF
server:
  listen: 127.0.0.1:$canopy_port
  adminListen: 127.0.0.1:$admin_port
  tls:
    generatedDir: $run/canopy-tls
upstream:
  kubeconfig: $CANOPY_UPSTREAM_KUBECONFIG
authentication:
  tokenReview: {cacheTtlSeconds: 120}
tree:
  domain: canopy.dev
  nodes:
    - name: big
      members:
        - {kind: User, name: bob, role: edit}
      allow:
        resources:
          - {apiGroups: [""], resources: ["*"], verbs: ["*"]}
      namespaces:
EOF
	for i in $(seq 0 $((tenant_ns - 1))); do printf '        - t%03d\n' "$i"; done
} >"$run/canopy.yaml"
"$canopy_bin" check-config "$run/canopy.yaml" >/dev/null

log "starting canopy on 127.0.0.1:$canopy_port (admin $admin_port), log bench/.run/tenant/canopy.log"
CANOPY_LOG="${CANOPY_LOG:-warn,rustls=error}" "$canopy_bin" serve --config "$run/canopy.yaml" >"$run/canopy.log" 2>&1 &
canopy_pid=$!

for _ in $(seq 300); do
	if ! kill -0 "$canopy_pid" 2>/dev/null; then
		log "canopy exited; its log:"
		tail -n 30 "$run/canopy.log" >&2
		exit 1
	fi
	if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/readyz" 2>/dev/null)" = 200 ]; then break; fi
	sleep 0.2
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/readyz" 2>/dev/null)" = 200 ] ||
	{ log "canopy not ready after 60s"; tail -n 30 "$run/canopy.log" >&2; exit 1; }
log "canopy (pid $canopy_pid) ready; harness pid $HARNESS_PID"

server_version="$(curl -s --cacert "$KUBE_CA_FILE" -H "Authorization: Bearer $TOKEN_ADMIN" "$KUBE_SERVER/version" |
	python3 -c 'import json,sys; print(json.load(sys.stdin).get("gitVersion","?"))' 2>/dev/null || echo "?")"
canopy_rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo "+uncommitted changes")"
canopy_built="$(date -u -r "$canopy_bin" '+%Y-%m-%d %H:%M UTC')"
wrk_version="$(wrk --version 2>&1 | head -n1 | awk '{print $2}' || true)"
versions="- Versions: kube-apiserver $server_version; canopy $canopy_rev (release build of $canopy_built); wrk $wrk_version"

python3 "$root/bench/tenant.py" \
	--env-file "$env_file" \
	--canopy-url "https://127.0.0.1:$canopy_port" \
	--canopy-ca "$run/canopy-tls/ca.crt" \
	--canopy-pid "$canopy_pid" \
	--canopy-admin "http://127.0.0.1:$admin_port" \
	--canopy-log "$run/canopy.log" \
	--tenant-namespaces "$tenant_ns" \
	--namespaces "$total_ns" \
	--configmaps "$per_ns" \
	--watch-writes "$burst" \
	--seconds "$seconds" \
	--warmup "$warmup" \
	--out-dir "$run/wrk" \
	--results "$results" \
	--command "$command" \
	--versions "$versions" &
driver_pid=$!
wait "$driver_pid"
