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

start_harness() { # DIR: starts (or reuses) the harness in DIR and exports its env (KUBE_SERVER, tokens, ...)
	local env_file
	env_file="$(integration-tests/up.sh "$1")"
	set -a
	# shellcheck disable=SC1090
	source "$env_file"
	set +a
}

free_port() { # a loopback port nothing listens on now
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_canopy() { # RUN_DIR THREADS PROTOCOL [UPSTREAM_YAML...]: a fresh Canopy in front of the harness
	# Writes RUN_DIR/canopy.yaml (extra lines go under upstream:, then $canopy_extra_yaml if set:
	# top-level settings such as a tree), starts target/release/canopy with its log in
	# RUN_DIR/canopy.log and waits for /readyz. Sets canopy_pid, canopy_port, canopy_admin_port.
	local run="$1" threads="$2" protocol="$3" line
	shift 3
	canopy_port="$(free_port)"
	canopy_admin_port="$(free_port)"
	{
		cat <<YAML
server:
  workerThreads: $threads
  listen: 127.0.0.1:$canopy_port
  adminListen: 127.0.0.1:$canopy_admin_port
  tls:
    generatedDir: $run/tls
authentication:
  tokenReview: {cacheTtlSeconds: 600}
upstream:
  kubeconfig: $CANOPY_UPSTREAM_KUBECONFIG
  protocol: $protocol
YAML
		for line in "$@"; do echo "  $line"; done
		echo "${canopy_extra_yaml:-}"
	} >"$run/canopy.yaml"
	CANOPY_LOG=warn,rustls=error target/release/canopy serve --config "$run/canopy.yaml" >"$run/canopy.log" 2>&1 &
	canopy_pid=$!
	for _ in $(seq 100); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$canopy_admin_port/readyz")" = 200 ] && return 0
		kill -0 "$canopy_pid" 2>/dev/null || break
		sleep 0.2
	done
	log "canopy (pid $canopy_pid) not ready; last lines of its log:"
	tail -n 20 "$run/canopy.log" >&2
	return 1
}
