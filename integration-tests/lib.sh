# Shared by up.sh and down.sh (sourced, not run).

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# run_dir_of ARG: the absolute run dir (default integration-tests/.run), created.
run_dir_of() {
	local d="${1:-$here/.run}"
	mkdir -p "$d"
	(cd "$d" && pwd)
}

# harness_pid RUN_DIR: prints the pid of the live harness for RUN_DIR, if any.
# It must hold RUN_DIR/lock open (the harness flocks it), so a recycled pid
# is never mistaken for it.
harness_pid() {
	local pid f
	pid="$(cat "$1/harness.pid" 2>/dev/null || true)"
	[ -n "$pid" ] && [ -d "/proc/$pid/fd" ] || return 1
	for f in /proc/"$pid"/fd/*; do
		if [ "$(readlink "$f" 2>/dev/null)" = "$1/lock" ]; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

# alive PID: the process exists and is not a zombie (the harness is detached,
# so whoever reaps it may take a while; a zombie still answers kill -0).
alive() {
	local s
	s="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
	[[ "$s" != Z* ]]
}
