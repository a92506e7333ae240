#!/usr/bin/env bash
# The README's first command: start a real kube-apiserver (the harness), build and start Canopy
# in front of it with proxy-config/example.yaml, write <user>.kubeconfig through Canopy into the
# run directory for every example user (alice, bob, carol, dave, erin), and print USER's path.
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

# A kubeconfig through Canopy for every user of the example tree (erin is a member nowhere), and
# for the requested user if it is another harness user.
token_of() { grep "^TOKEN_${1^^}=" "$run_dir/env" | cut -d= -f2 | tr -d "'"; }
users=(alice bob carol dave erin)
[[ " ${users[*]} " == *" $user "* ]] || users+=("$user")
umask 077 # they hold bearer tokens
for u in "${users[@]}"; do
	token="$(token_of "$u" || true)"
	[ -n "$token" ] || { echo "the harness has no token for user $u" >&2; exit 1; }
	# Written aside, then renamed: a kubectl reading the old file never sees half a new one.
	"$canopy" kubeconfig --config "$config" --user "$u" --token "$token" >"$run_dir/$u.kubeconfig.tmp"
	mv "$run_dir/$u.kubeconfig.tmp" "$run_dir/$u.kubeconfig"
done
kubeconfig="$run_dir/$user.kubeconfig"
echo "kubeconfigs for ${users[*]} in $run_dir" >&2
echo "export KUBECONFIG=$kubeconfig   # $user through Canopy at https://127.0.0.1:6443" >&2
echo "$kubeconfig"
