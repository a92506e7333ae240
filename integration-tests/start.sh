#!/usr/bin/env bash
# The README's first command: start a real kube-apiserver (the harness), build and start Canopy
# in front of it with proxy-config/example.yaml, and print a kubeconfig for a tenant.
#   integration-tests/start.sh [USER]     (default user: alice)
# Stop everything with integration-tests/stop.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
run_dir="$here/.run"
user="${1:-alice}"
config="$root/proxy-config/example.yaml"

"$here/up.sh" "$run_dir" >/dev/null
(cd "$root" && cargo build --release --locked --bin canopy)
canopy="$root/target/release/canopy"
"$canopy" check-config "$config" >/dev/null

pid_file="$run_dir/canopy.pid"
if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
	echo "canopy already running (pid $(cat "$pid_file"))" >&2
else
	setsid nohup "$canopy" serve --config "$config" >>"$run_dir/canopy.log" 2>&1 </dev/null &
	echo $! >"$pid_file"
	for _ in $(seq 1 100); do
		curl -fsS http://127.0.0.1:6444/readyz >/dev/null 2>&1 && break
		kill -0 "$(cat "$pid_file")" 2>/dev/null || { tail -n 20 "$run_dir/canopy.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "canopy started (pid $(cat "$pid_file")), log $run_dir/canopy.log" >&2
fi

token="$(grep "^TOKEN_${user^^}=" "$run_dir/env" | cut -d= -f2 | tr -d "'")"
[ -n "$token" ] || { echo "the harness has no token for user $user" >&2; exit 1; }
kubeconfig="$run_dir/$user.kubeconfig"
"$canopy" kubeconfig --config "$config" --user "$user" --token "$token" >"$kubeconfig"
echo "export KUBECONFIG=$kubeconfig   # $user through Canopy at https://127.0.0.1:6443" >&2
echo "$kubeconfig"
