#!/usr/bin/env bash
# Build, then start the harness for RUN_DIR (default integration-tests/.run)
# in the background and wait until it is ready. Prints the env file's path.
# HARNESS_HTTP2_MAX_STREAMS: kube-apiserver's --http2-max-streams-per-connection (default: its own, 100).
#   source "$(integration-tests/up.sh)"   # or: up.sh; source .run/env
set -euo pipefail
source "$(dirname "$0")/lib.sh"
run_dir="$(run_dir_of "${1:-}")"
timeout="${HARNESS_READY_TIMEOUT:-180}"

"$here/build.sh" >&2

if pid="$(harness_pid "$run_dir")"; then
	if [ -f "$run_dir/ready" ]; then
		echo "harness already running and ready (pid $pid)" >&2
		echo "$run_dir/env"
		exit 0
	fi
	echo "harness already starting (pid $pid), waiting" >&2
else
	rm -f "$run_dir/ready"
	# setsid + nohup: survives this shell and its terminal; all output goes to
	# harness.log (the harness also writes its own logs there).
	setsid nohup "$here/.bin/harness" --run-dir "$run_dir" \
		--bootstrap-dir "${HARNESS_BOOTSTRAP_DIR:-$here/bootstrap}" \
		--http2-max-streams-per-connection "${HARNESS_HTTP2_MAX_STREAMS:-0}" \
		>>"$run_dir/harness.log" 2>&1 </dev/null &
	pid=$!
	echo "harness starting (pid $pid), log $run_dir/harness.log" >&2
fi

deadline=$((SECONDS + timeout))
until [ -f "$run_dir/ready" ]; do
	if ! alive "$pid" || [ $SECONDS -ge $deadline ]; then
		alive "$pid" && echo "harness not ready after ${timeout}s" >&2 || echo "harness exited" >&2
		echo "---- last lines of $run_dir/harness.log ----" >&2
		tail -n 40 "$run_dir/harness.log" >&2
		exit 1
	fi
	sleep 0.2
done
echo "harness ready ($(grep ready_seconds "$run_dir/ready" | cut -d= -f2)s from start, pid $pid)" >&2
echo "$run_dir/env"
