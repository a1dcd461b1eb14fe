#!/usr/bin/env bash
# Runs the real test servers on free loopback ports: nats-server with JetStream and versitygw
# (an S3 gateway over a directory), with static test credentials.
#
# Usage: servers.sh start|stop|env|status
#   start   start both servers, wait until they answer, write $RUN_DIR/env
#   stop    stop the servers this run dir records and remove the run dir
#   env     print the env file (eval "$(servers.sh env)")
#   status  say whether the recorded servers are running
# Environment:
#   TABNAS_RUN_DIR    runtime dir: pids, logs, data (default ${TMPDIR:-/tmp}/tabnas-servers-$UID)
#   TABNAS_TOOLS_DIR  where install-servers.sh put the binaries (default $HOME/.cache/tabnas/bin)
# The env file exports TABNAS_TEST_NATS_URL, TABNAS_TEST_S3_{ENDPOINT,ACCESS_KEY,SECRET_KEY,
# BUCKET,REGION} and TABNAS_TEST_NATS_SERVER (the nats-server binary, for tests that need a
# server of their own, e.g. one with authentication).
set -euo pipefail

RUN_DIR="${TABNAS_RUN_DIR:-${TMPDIR:-/tmp}/tabnas-servers-$(id -u)}"
TOOLS_DIR="${TABNAS_TOOLS_DIR:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache/tabnas/bin}"
MARKER="$RUN_DIR/.tabnas-servers" # only a dir carrying this is ever removed
S3_ACCESS_KEY="tabnas-test"
S3_SECRET_KEY="tabnas-test-secret"
S3_BUCKET="tabnas-test"
S3_REGION="us-east-1"

log() { echo "servers: $*" >&2; }
die() { log "$*"; exit 1; }

# alive PID NAME: the process exists, is not a zombie, and runs NAME (guards against pid reuse).
alive() {
	local pid="$1" name="$2" state
	[[ -r "/proc/$pid/stat" ]] || return 1
	state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
	[[ "$state" != Z ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name"
}

# started PID: our just-forked child still exists and is not a zombie. (Its cmdline is not
# the server's until exec, so alive's name check would race here.)
started() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
	[[ "$state" != Z ]]
}

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		port_in_use "$p" || { echo "$p"; return 0; }
	done
	die "no free loopback port found"
}

# nats_ready PORT: the server greets with an INFO line that says JetStream is on.
nats_ready() {
	local line
	line="$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r -t 2 l <&3 && echo "$l") 2>/dev/null)" || return 1
	[[ "$line" == INFO* && "$line" == *'"jetstream":true'* ]]
}

# s3_ready PORT: any HTTP answer (403 without credentials) means the gateway serves.
s3_ready() {
	local line
	line="$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
		printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
		IFS= read -r -t 2 l <&3 && echo "$l") 2>/dev/null)" || return 1
	[[ "$line" == HTTP/* ]]
}

# launch NAME READYFN ARGS...: start NAME on a free port (ARGS use @PORT@), retrying on a
# port race, wait up to 30 s for READYFN; prints the port.
launch() {
	local name="$1" ready="$2" bin="$TOOLS_DIR/$1" port pid try i args
	shift 2
	[[ -x "$bin" ]] || die "$bin not found: run infra/scripts/install-servers.sh first"
	for try in 1 2 3 4 5; do
		port="$(pick_port)"
		args=("${@//@PORT@/$port}")
		"$bin" "${args[@]}" </dev/null >"$RUN_DIR/$name.log" 2>&1 &
		pid=$!
		disown "$pid" 2>/dev/null || true
		echo "$pid" >"$RUN_DIR/$name.pid"
		for i in $(seq 1 300); do
			if ! started "$pid"; then
				break
			fi
			if "$ready" "$port"; then
				log "$name ready on 127.0.0.1:$port (pid $pid)"
				echo "$port"
				return 0
			fi
			sleep 0.1
		done
		if started "$pid"; then
			kill "$pid" 2>/dev/null || true
			log "$name did not answer on port $port within 30 s; log:"
			tail -n 20 "$RUN_DIR/$name.log" >&2 || true
			return 1
		fi
		log "$name exited at start (try $try, port $port); log:"
		tail -n 5 "$RUN_DIR/$name.log" >&2 || true
	done
	return 1
}

stop_one() {
	local name="$1" pidfile="$RUN_DIR/$1.pid" pid i
	[[ -f "$pidfile" ]] || return 0
	pid="$(cat "$pidfile")"
	if [[ -n "$pid" ]] && alive "$pid" "$name"; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 100); do
			alive "$pid" "$name" || break
			sleep 0.1
		done
		if alive "$pid" "$name"; then
			log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
		fi
		log "stopped $name (pid $pid)"
	fi
	rm -f "$pidfile"
}

running() {
	local n
	for n in nats-server versitygw; do
		[[ -f "$RUN_DIR/$n.pid" ]] && alive "$(cat "$RUN_DIR/$n.pid")" "$n" || return 1
	done
}

cmd_stop() {
	[[ -d "$RUN_DIR" ]] || return 0
	[[ -f "$MARKER" ]] || die "$RUN_DIR was not made by servers.sh; not touching it"
	stop_one nats-server
	stop_one versitygw
	rm -rf "$RUN_DIR"
}

cmd_start() {
	if [[ -f "$MARKER" ]] && running && [[ -f "$RUN_DIR/env" ]]; then
		log "already running; env in $RUN_DIR/env"
		return 0
	fi
	if [[ -d "$RUN_DIR" ]]; then
		if [[ -f "$MARKER" ]]; then
			cmd_stop # leftovers of a crashed run
		elif [[ -n "$(ls -A "$RUN_DIR")" ]]; then
			die "$RUN_DIR exists, is not empty and was not made by servers.sh"
		fi
	fi
	mkdir -p "$RUN_DIR/nats" "$RUN_DIR/s3/$S3_BUCKET"
	touch "$MARKER"
	local nats_port s3_port
	if ! nats_port="$(launch nats-server nats_ready -js -sd "$RUN_DIR/nats" -a 127.0.0.1 -p @PORT@)"; then
		cmd_stop
		die "could not start nats-server"
	fi
	# A bucket on the posix backend is a top-level directory (made above).
	if ! s3_port="$(launch versitygw s3_ready --port 127.0.0.1:@PORT@ --access "$S3_ACCESS_KEY" \
		--secret "$S3_SECRET_KEY" --region "$S3_REGION" -q posix "$RUN_DIR/s3")"; then
		cmd_stop
		die "could not start versitygw"
	fi
	cat >"$RUN_DIR/env.tmp" <<-ENV
		export TABNAS_TEST_NATS_URL=nats://127.0.0.1:$nats_port
		export TABNAS_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
		export TABNAS_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY
		export TABNAS_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
		export TABNAS_TEST_S3_BUCKET=$S3_BUCKET
		export TABNAS_TEST_S3_REGION=$S3_REGION
		export TABNAS_TEST_NATS_SERVER=$TOOLS_DIR/nats-server
	ENV
	mv "$RUN_DIR/env.tmp" "$RUN_DIR/env"
	log "env written to $RUN_DIR/env"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env)
	running && [[ -f "$RUN_DIR/env" ]] || die "servers are not running in $RUN_DIR (run: servers.sh start)"
	cat "$RUN_DIR/env"
	;;
status)
	if running; then log "running in $RUN_DIR"; else log "not running in $RUN_DIR"; exit 1; fi
	;;
*)
	echo "usage: $0 start|stop|env|status" >&2
	exit 2
	;;
esac
