#!/usr/bin/env bash
# Stop the harness for RUN_DIR (default integration-tests/.run): SIGTERM,
# wait up to 30 s, then SIGKILL. Safe to run when nothing is running.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
run_dir="$(run_dir_of "${1:-}")"

if ! pid="$(harness_pid "$run_dir")"; then
	echo "no harness running for $run_dir" >&2
	rm -f "$run_dir/ready"
	exit 0
fi
kill -TERM "$pid" 2>/dev/null || true
# Gone = no longer holds the lock (a zombie waiting for its reaper still
# answers kill -0, but has closed its files).
for _ in $(seq 300); do
	harness_pid "$run_dir" >/dev/null || break
	sleep 0.1
done
if harness_pid "$run_dir" >/dev/null && alive "$pid"; then
	echo "harness (pid $pid) still running after 30s, killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
	sleep 0.2
fi
rm -f "$run_dir/ready"
echo "harness stopped (pid $pid)" >&2
