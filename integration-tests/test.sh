#!/usr/bin/env bash
# Runs every test: unit tests and the end-to-end suite against a real kube-apiserver.
# Starts the harness (integration-tests/.run) if it is not running, and stops it again if it
# started it. Extra arguments go to `cargo test` (e.g. `--test e2e -- tenancy::` for one module).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
run_dir="${CANOPY_HARNESS_DIR:-$here/.run}"

started=0
if [ ! -f "$run_dir/ready" ] || ! kill -0 "$(grep '^HARNESS_PID=' "$run_dir/env" 2>/dev/null | cut -d= -f2 | tr -d "'")" 2>/dev/null; then
	started=1
fi
"$here/up.sh" "$run_dir" >/dev/null
if [ "$started" = 1 ]; then
	trap '"$here/down.sh" "$run_dir" >/dev/null 2>&1 || true' EXIT
fi

cd "$root"
# The helm e2e test drives the pinned helm that charts/test.sh installs (and checks the chart with).
if [ -z "${HELM:-}" ] && ! ls target/helm/*/helm >/dev/null 2>&1; then
	charts/test.sh
fi
# The Python client e2e test drives the official client tenants use, from a venv of its own.
venv="$here/.venv"
if ! "$venv/bin/python" -c 'import kubernetes' 2>/dev/null; then
	rm -rf "$venv"
	if ! python3 -m venv "$venv" 2>/dev/null; then
		# Debian ships venv (ensurepip) as a package of its own.
		rm -rf "$venv"
		apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
		python3 -m venv "$venv"
	fi
	"$venv/bin/pip" install -q kubernetes==37.0.2
fi
# The unit tests, then the one end-to-end binary (`--test e2e`), whose tests run in parallel, each
# with its own Canopy process; those that change the example tree take its lock for writing.
CANOPY_HARNESS_DIR="$run_dir" cargo test --release --locked "$@"
