# Shell helpers shared by the bench scripts (sourced from the repository root after they define log()).

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

need_command() { # COMMAND PACKAGE: installs PACKAGE with apt if COMMAND is missing
	local cmd="$1" package="$2"
	if ! command -v "$cmd" >/dev/null; then
		log "installing $package"
		apt-get install -y "$package" >/dev/null || { apt-get update >/dev/null && apt-get install -y "$package" >/dev/null; }
	fi
	command -v "$cmd" >/dev/null || { log "$cmd is not available"; exit 1; }
}

release_harness() { # DIR KEEP: stops the harness in DIR, or leaves it running when KEEP is 1
	local dir="$1" keep="$2"
	if [ "$keep" = 1 ]; then
		log "BENCH_KEEP=1: harness left running; stop it with: integration-tests/down.sh ${dir#"$PWD"/}"
	else
		integration-tests/down.sh "$dir" || true
	fi
}
