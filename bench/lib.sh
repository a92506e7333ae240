# Shell helpers shared by the bench scripts (sourced from the repository root; they define log()).

stop_pid() { # NAME PID: SIGTERM, wait up to 10 s, then SIGKILL
	local name="$1" pid="$2"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) still running after 10s, killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	log "stopped $name (pid $pid)"
}
