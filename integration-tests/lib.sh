# Shared by up.sh and down.sh (sourced, not run).

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# run_dir_of ARG: the absolute run dir (default integration-tests/.run), created.
run_dir_of() {
	local d="${1:-$here/.run}"
	mkdir -p "$d"
	(cd "$d" && pwd)
}

# harness_pid RUN_DIR: prints the pid of the live harness for RUN_DIR, if any.
# The command line is checked too, so a recycled pid is not mistaken for it.
harness_pid() {
	local pid
	pid="$(cat "$1/harness.pid" 2>/dev/null || true)"
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--run-dir $1 " || return 1
	echo "$pid"
}
