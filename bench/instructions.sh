#!/usr/bin/env bash
# User-space instructions per request, Canopy vs the bare relay, counted by callgrind: a figure
# that does not move with timing or machine load, for changes too small for bench/run.sh's CPU
# figures. Starts the bench harness (bench/.run/harness), stops it on exit unless BENCH_KEEP=1,
# and writes the figures into the "instructions" section of bench/RESULTS.md. See bench/README.md.
#
#   bash bench/instructions.sh               # about 5 minutes once everything is built
#   BENCH_KEEP=1 bash bench/instructions.sh  # leave the harness running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
run="$root/bench/.run"
harness_dir="$run/harness"
keep="${BENCH_KEEP:-0}"

command="bash bench/instructions.sh${*:+ $*}"
if [ -n "${BENCH_KEEP:-}" ]; then command="BENCH_KEEP=$BENCH_KEEP $command"; fi

log() { echo "[instructions] $*" >&2; }

. bench/lib.sh # need_command, release_harness

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	release_harness "$harness_dir" "$keep"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_command valgrind valgrind

mkdir -p "$run"
log "starting the harness in bench/.run/harness (first build takes minutes)"
env_file="$(integration-tests/up.sh "$harness_dir")"

log "building canopy and the bare relay (release)"
cargo build --release --quiet --bin canopy --example bare_relay

canopy_rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo "+uncommitted changes")"
python3 "$root/bench/instructions.py" \
	--env-file "$env_file" \
	--canopy-bin "$root/target/release/canopy" \
	--relay-bin "$root/target/release/examples/bare_relay" \
	--results "$root/bench/RESULTS.md" \
	--command "$command" \
	--versions "- Versions: canopy $canopy_rev (release build); $(valgrind --version)"
