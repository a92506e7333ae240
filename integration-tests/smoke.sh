#!/usr/bin/env bash
# End-to-end check of a running harness with one kubectl: namespaces (and
# the namespace controller), pods on fake-node, logs, exec (exit codes, SPDY
# and WebSocket), attach, port-forward, pod deletion, RBAC.
#   integration-tests/smoke.sh [RUN_DIR] [KUBECTL]   (KUBECTL default: the built one)
# Ends with "N passed, N failed"; exit status 1 if anything failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
run_dir="$(run_dir_of "${1:-}")"
source "$run_dir/env"
k="${2:-$KUBECTL}"
export KUBECONFIG="$ADMIN_KUBECONFIG"
ns="smoke-$$"
pass=0 fail=0
tmp="$(mktemp -d)"
py=""
cleanup() {
	[ -n "$py" ] && kill "$py" 2>/dev/null || true
	"$k" delete ns "$ns" --wait=false >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# check NAME EXPECTED_SUBSTRING COMMAND...: runs COMMAND (stdout+stderr).
check() {
	local name="$1" want="$2" out
	shift 2
	out="$("$@" 2>&1)" || true
	if [[ "$out" == *"$want"* ]]; then
		pass=$((pass + 1)) && echo "ok   $name"
	else
		fail=$((fail + 1)) && echo "FAIL $name: want '$want', got: $out"
	fi
}
rc() { "$@" >/dev/null 2>&1 && echo "rc=0" || echo "rc=$?"; }

echo "kubectl: $k ($("$k" version --client 2>/dev/null | head -1))"
check "get ns" "kube-system" "$k" get ns
check "create ns" "created" "$k" create ns "$ns"
check "run pod" "created" "$k" run p1 -n "$ns" --image=any-image --restart=Never
check "pod Running on fake-node" "Running fake-node" "$k" wait -n "$ns" pod/p1 --for=jsonpath='{.status.phase}'=Running \
	--timeout=30s -o jsonpath='{.status.phase} {.spec.nodeName}'
check "logs" "container p1 of pod $ns/p1 started" "$k" logs -n "$ns" p1
echo "line two" >>"$KUBELET_LOG_DIR/$ns/p1/p1.log"
check "logs --tail=1" "line two" "$k" logs -n "$ns" p1 --tail=1
( sleep 1; echo "followed line" >>"$KUBELET_LOG_DIR/$ns/p1/p1.log" ) &
check "logs -f sees appended lines" "followed line" timeout 3 "$k" logs -f -n "$ns" p1
check "exec echo" "hi" "$k" exec -n "$ns" p1 -- echo hi
check "exec exit code" "rc=3" rc "$k" exec -n "$ns" p1 -- sh -c 'exit 3'
check "exec stdin" "piped" sh -c "echo piped | '$k' exec -i -n '$ns' p1 -- cat"
check "exec SPDY" "rc=4" rc env KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false "$k" exec -n "$ns" p1 -- sh -c 'exit 4'
check "exec WebSocket" "rc=5" rc env KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true "$k" exec -n "$ns" p1 -- sh -c 'exit 5'
check "attach -i echoes" "hello attach" sh -c "printf 'hello attach\n' | timeout 10 '$k' attach -i -n '$ns' p1"
check "attach input in log" "hello attach" cat "$KUBELET_LOG_DIR/$ns/p1/p1.log"

echo "served by python" >"$tmp/index.html"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$tmp" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
py=$!
for ws in true false; do
	lport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
	KUBECTL_PORT_FORWARD_WEBSOCKETS=$ws "$k" port-forward -n "$ns" pod/p1 "$lport:$port" >/dev/null 2>&1 &
	pf=$!
	for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$lport/" && break; sleep 0.1; done
	check "port-forward (websockets=$ws)" "served by python" curl -s "http://127.0.0.1:$lport/index.html"
	kill "$pf" 2>/dev/null || true
done

check "delete pod is prompt" "deleted" timeout 15 "$k" delete pod -n "$ns" p1
check "RBAC: nobody is forbidden" "Forbidden" "$k" --kubeconfig=/dev/null --server="$KUBE_SERVER" \
	--certificate-authority="$KUBE_CA_FILE" --token="$TOKEN_NOBODY" get pods -n "$ns"
check "delete ns finishes" "deleted" timeout 60 "$k" delete ns "$ns"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
