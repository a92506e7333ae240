#!/usr/bin/env bash
# Stops what integration-tests/start.sh started: Canopy, then the harness.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pid_file="$here/.run/canopy.pid"
if [ -f "$pid_file" ]; then
	pid="$(cat "$pid_file")"
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pid_file"
fi
"$here/down.sh" "$here/.run"
