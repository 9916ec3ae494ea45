#!/bin/sh
# PostgreSQL for the adopter example's stack: `sh start-postgres.sh DATA_DIR PORT [LISTEN]`.
# LISTEN (default 127.0.0.1) is the address to listen on: the compose image passes 0.0.0.0,
# since the host reaches the container through its network (docker/Dockerfile).
# Creates the cluster on first start (initdb), then execs the server in the foreground,
# so the stack plugin's process-group kill (and its reaper, after a kill -9 of pytest)
# reaches every postgres process. PostgreSQL refuses to run as root: as root, both steps
# run as the unprivileged `postgres` user (created by Debian's postgresql package).
set -eu
data="$1"
port="$2"
listen="${3:-127.0.0.1}"
# Debian keeps the server binaries out of PATH, one folder per major version.
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ]; then
    echo "start-postgres.sh: no /usr/lib/postgresql/*/bin: install PostgreSQL (make system-deps)" >&2
    exit 1
fi
as_user=""
if [ "$(id -u)" = 0 ]; then
    # setpriv execs the command itself (runuser/su would stay as its parent).
    as_user="setpriv --reuid=postgres --regid=postgres --init-groups --"
    mkdir -p "$data"
    chown postgres:postgres "$data"
    if ! $as_user test -w "$data"; then
        echo "start-postgres.sh: the postgres user cannot write $data: every folder above it" \
            "must be searchable by other users (pytest's own /tmp/pytest-of-root is not)" >&2
        exit 1
    fi
fi
mkdir -p "$data"
chmod 700 "$data"
if [ ! -s "$data/PG_VERSION" ]; then
    # trust on 127.0.0.1 and the socket only: a throwaway cluster for tests.
    $as_user "$bin/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 >"$data.initdb.log" 2>&1 || {
        cat "$data.initdb.log" >&2
        exit 1
    }
    if [ "$listen" != 127.0.0.1 ]; then
        # In a container, connections arrive from its network's gateway, not 127.0.0.1;
        # the port is published on the host's 127.0.0.1 only.
        echo "host all all 0.0.0.0/0 trust" >>"$data/pg_hba.conf"
    fi
fi
# Tests need no durability: fsync and friends off make start and writes fast.
exec $as_user "$bin/postgres" -D "$data" -p "$port" -k "$data" \
    -c "listen_addresses=$listen" -c fsync=off -c synchronous_commit=off -c full_page_writes=off
