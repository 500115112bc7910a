#!/usr/bin/env bash
# Sets Ferry up on this machine and runs it: ./scripts/setup.sh [start|stop|restart|status]
#
# start (default): installs what is missing, migrates, makes sure an admin
# exists, seeds the demo topology into an empty database, then runs Redis,
# the web server, two Celery workers (quick tasks; builds and other long
# work) and beat in the background (pid files and logs under var/) and
# prints the URL. Running it again starts nothing twice.
# stop: stops what start started, by pid file only.
#
# Environment: FERRY_PORT (web, default 8000), FERRY_REDIS_PORT (default
# 6390), FERRY_ADMIN_USER / FERRY_ADMIN_PASSWORD (else a password is
# generated and printed once), DATABASE_URL (default SQLite under var/).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${FERRY_PORT:-8000}
REDIS_PORT=${FERRY_REDIS_PORT:-6390}
RUN=$FERRY_VAR/run
LOG=$FERRY_VAR/log
SERVICES=(redis worker builder beat web)  # start order; stop runs it backwards

export DJANGO_SETTINGS_MODULE=controlplane.settings.dev

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

marker_of() {  # what the command line of service $1 matches (grep -E)
  case $1 in
    redis) echo 'redis-server' ;;
    worker) echo 'celery.*-n worker@' ;;
    builder) echo 'celery.*-n builder@' ;;
    beat) echo 'celery.*beat' ;;
    web) echo 'gunicorn' ;;
  esac
}

# A pid file that outlived its process (a reboot, a kill -9) may name some
# other process by now: only a live pid running the service's own program
# counts, and only such a pid is ever signalled.
is_running() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq -- "$(marker_of "$1")"
}

set_command() {  # sets CMD to the command line of service $1
  local venv=$FERRY_VENV/bin
  case $1 in
    redis) CMD=(redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save ""
                --appendonly no --dir "$FERRY_VAR") ;;
    # Quick tasks (checks, applies, cancels) on the default queue; builds,
    # provisioning and prewarm on "long", so they never hold the quick ones up.
    worker) CMD=("$venv/celery" -A controlplane.celery worker -n worker@%h
                 -Q celery --loglevel INFO --concurrency 2) ;;
    builder) CMD=("$venv/celery" -A controlplane.celery worker -n builder@%h
                  -Q long --loglevel INFO --concurrency 2) ;;
    # --pidfile= : beat would otherwise write celerybeat.pid into the cwd.
    beat) CMD=("$venv/celery" -A controlplane.celery beat --loglevel INFO
               --schedule "$FERRY_VAR/celerybeat-schedule" --pidfile=) ;;
    web) CMD=("$venv/gunicorn" controlplane.wsgi --bind "127.0.0.1:$PORT"
              --workers 2 --access-logfile -) ;;
  esac
}

start_one() {  # returns 1 when it was running already
  local name=$1
  if is_running "$name"; then
    echo "$name already running (pid $(pid_of "$name"))"
    return 1
  fi
  set_command "$name"
  # Each service gets its own session, so stop can signal its whole group.
  setsid nohup "${CMD[@]}" >>"$LOG/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  echo "$name started (pid $!, log var/log/$name.log)"
}

stop_one() {
  local name=$1 pid; pid=$(pid_of "$name")
  if ! is_running "$name"; then
    [ -n "$pid" ] && echo "$name not running (stale pid file for $pid removed)"
    rm -f "$RUN/$name.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.3
  done
  # Whatever is left of its process group (pool children) goes too.
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
  echo "$name stopped (pid $pid)"
}

wait_ready() {  # name probe-kind:target
  local name=$1 url=$2
  for _ in $(seq 1 120); do
    is_running "$name" || { tail -n 30 "$LOG/$name.log" >&2; ferry_die "$name exited"; }
    "$FERRY_PY" "$FERRY_ROOT/scripts/probe.py" "${url%%:*}" "${url#*:}" 1 && return 0
  done
  tail -n 30 "$LOG/$name.log" >&2
  ferry_die "$name did not become ready"
}

check_port_free() {  # name port
  is_running "$1" && return 0
  "$FERRY_PY" "$FERRY_ROOT/scripts/probe.py" free "$2" \
    || ferry_die "port $2 (for $1) is taken; choose another with FERRY_PORT / FERRY_REDIS_PORT"
}

prepare_database() {
  cd "$FERRY_ROOT"
  "$FERRY_PY" manage.py migrate --noinput -v 0
  if [ "${FERRY_DEBUG:-true}" != "true" ]; then
    "$FERRY_PY" manage.py collectstatic --noinput -v 0
  fi
  "$FERRY_PY" manage.py ensure_admin
  "$FERRY_PY" manage.py seed_demo
}

start_all() {
  ferry_install
  mkdir -p "$RUN" "$LOG"
  cd "$FERRY_ROOT"
  check_port_free redis "$REDIS_PORT"
  check_port_free web "$PORT"
  # A running Redis keeps the port it was started with.
  start_one redis && echo "$REDIS_PORT" >"$RUN/redis.port"
  REDIS_PORT=$(cat "$RUN/redis.port")
  export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
  wait_ready redis "tcp:$REDIS_PORT"
  prepare_database
  start_one worker || true
  start_one builder || true
  start_one beat || true
  # The URL is the one the running web server was started with.
  start_one web && echo "http://127.0.0.1:$PORT/" >"$RUN/web.url"
  local url; url=$(cat "$RUN/web.url")
  wait_ready web "http:${url}login/"
  echo
  echo "Ferry is running at $url   (stop it with ./scripts/setup.sh stop)"
}

stop_all() {
  local i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do stop_one "${SERVICES[$i]}"; done
}

status_all() {
  local name
  for name in "${SERVICES[@]}"; do
    if is_running "$name"; then echo "$name: running (pid $(pid_of "$name"))"
    else echo "$name: stopped"; fi
  done
}

case "${1:-start}" in
  start) start_all ;;
  stop) stop_all ;;
  restart) stop_all; start_all ;;
  status) status_all ;;
  *) echo "usage: $0 [start|stop|restart|status]" >&2; exit 2 ;;
esac
