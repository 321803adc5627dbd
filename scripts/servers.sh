#!/usr/bin/env bash
# Real servers for the test suite: PostgreSQL, Redis and ClickHouse on loopback, non-default ports.
#
#   scripts/servers.sh start   install what is missing (Debian packages), start each server, write
#                              .servers/env with the URLs the tests read (COSTLENS_TEST_*)
#   scripts/servers.sh stop    stop every server this script started (safe to run twice)
#   scripts/servers.sh pause KIND / resume KIND
#                              stop one server and start it again on the same port and data, for
#                              fault tests (Redis runs without persistence: it comes back empty)
#
# A server that cannot be installed or started is left out of .servers/env with a line saying why;
# the tests that need it skip with that reason. Nothing here touches the system's own server
# instances or their data: everything lives under .servers/.
set -u

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/.servers"
ENV_FILE="$DIR/env"
# Ports below Linux's default ephemeral range (32768-60999): a port inside it can be taken by some
# client socket's local end at the moment the server starts ("Address already in use").
PG_PORT="${COSTLENS_PG_PORT:-25432}"
REDIS_PORT="${COSTLENS_REDIS_PORT:-16379}"
CH_PORT="${COSTLENS_CH_PORT:-19000}"
CH_HTTP_PORT="${COSTLENS_CH_HTTP_PORT:-18123}"

say() { echo "servers: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

apt_install() {
    # Install Debian packages that are missing; quiet unless it fails.
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$DIR/apt.log" 2>&1 \
        || { as_root apt-get update -q >>"$DIR/apt.log" 2>&1 \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$DIR/apt.log" 2>&1; }
}

pg_bin() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    [ -n "$found" ] && echo "$found"
}

start_postgres() {
    local bin
    bin="$(pg_bin)" || true
    if [ -z "$bin" ]; then apt_install postgresql || true; bin="$(pg_bin)" || true; fi
    [ -n "$bin" ] || { echo "# PostgreSQL: not installed and apt-get could not install it" >>"$ENV_FILE"; return; }
    local pg="$DIR/pg"
    rm -rf "$pg" && mkdir -p "$pg"
    local run=()
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$pg"; run=(runuser -u postgres --); fi
    if ! "${run[@]}" "$bin/initdb" -D "$pg/data" -A trust -U postgres --no-sync >"$pg/initdb.log" 2>&1; then
        echo "# PostgreSQL: initdb failed, see .servers/pg/initdb.log" >>"$ENV_FILE"; return
    fi
    # a server stopped a moment ago may still hold the port: one more try after a pause
    if ! launch_postgres "$bin" && ! { sleep 3; launch_postgres "$bin"; }; then
        echo "# PostgreSQL: did not start, see .servers/pg/log and .servers/pg/start.log" >>"$ENV_FILE"; return
    fi
    "${run[@]}" "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE costlens_test" >/dev/null 2>&1
    echo "export COSTLENS_TEST_POSTGRES=postgresql://postgres@127.0.0.1:$PG_PORT/costlens_test" >>"$ENV_FILE"
    say "PostgreSQL on 127.0.0.1:$PG_PORT"
}

launch_postgres() {
    local bin="$1" pg="$DIR/pg" run=()
    [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    "${run[@]}" "$bin/pg_ctl" -D "$pg/data" -l "$pg/log" -w -t 60 \
        -o "-p $PG_PORT -k $pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
        start >"$pg/start.log" 2>&1
}

stop_postgres() {
    local bin pg="$DIR/pg"
    bin="$(pg_bin)" || true
    [ -n "$bin" ] && [ -f "$pg/data/postmaster.pid" ] || return 0
    local run=()
    [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    "${run[@]}" "$bin/pg_ctl" -D "$pg/data" -m immediate -w stop >/dev/null 2>&1 || true
}

start_redis() {
    command -v redis-server >/dev/null || apt_install redis-server || true
    command -v redis-server >/dev/null || { echo "# Redis: not installed and apt-get could not install it" >>"$ENV_FILE"; return; }
    mkdir -p "$DIR/redis"
    if ! launch_redis; then
        echo "# Redis: did not start, see .servers/redis/log" >>"$ENV_FILE"; return
    fi
    echo "export COSTLENS_TEST_REDIS=redis://127.0.0.1:$REDIS_PORT/0" >>"$ENV_FILE"
    say "Redis on 127.0.0.1:$REDIS_PORT"
}

launch_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --dir "$DIR/redis" --pidfile "$DIR/redis/pid" --logfile "$DIR/redis/log" >/dev/null 2>&1 || return 1
    for _ in $(seq 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

stop_redis() {
    [ -s "$DIR/redis/pid" ] || return 0
    kill "$(cat "$DIR/redis/pid")" 2>/dev/null || true
    rm -f "$DIR/redis/pid"
}

start_clickhouse() {
    command -v clickhouse-server >/dev/null || apt_install clickhouse-server || true
    if ! command -v clickhouse-server >/dev/null || [ ! -f /etc/clickhouse-server/config.xml ]; then
        echo "# ClickHouse: not installed and apt-get could not install it" >>"$ENV_FILE"; return
    fi
    local ch="$DIR/clickhouse"
    rm -rf "$ch" && mkdir -p "$ch/data" "$ch/tmp" "$ch/user_files" "$ch/format_schemas" "$ch/log"
    # A copy of the packaged config with our paths and ports, IPv4 loopback only.
    sed -e "s#/var/lib/clickhouse/#$ch/data/#g" \
        -e "s#<tmp_path>[^<]*</tmp_path>#<tmp_path>$ch/tmp/</tmp_path>#" \
        -e "s#<user_files_path>[^<]*</user_files_path>#<user_files_path>$ch/user_files/</user_files_path>#" \
        -e "s#<format_schema_path>[^<]*</format_schema_path>#<format_schema_path>$ch/format_schemas/</format_schema_path>#" \
        -e "s#/var/log/clickhouse-server/#$ch/log/#g" \
        -e "s#<http_port>8123</http_port>#<http_port>$CH_HTTP_PORT</http_port>#" \
        -e "s#<tcp_port>9000</tcp_port>#<tcp_port>$CH_PORT</tcp_port>#" \
        -e "s#<tcp_port_secure>9440</tcp_port_secure>##" \
        -e "s#<interserver_http_port>9009</interserver_http_port>##" \
        -e "s#<listen_host>::1</listen_host>##" \
        /etc/clickhouse-server/config.xml >"$ch/config.xml"
    cp /etc/clickhouse-server/users.xml "$ch/users.xml"
    sed -i "s#<users_config>[^<]*</users_config>#<users_config>$ch/users.xml</users_config>#" "$ch/config.xml"
    if ! launch_clickhouse; then
        echo "# ClickHouse: did not start, see .servers/clickhouse/log" >>"$ENV_FILE"; stop_clickhouse; return
    fi
    clickhouse-client --port "$CH_PORT" --host 127.0.0.1 -q "CREATE DATABASE IF NOT EXISTS costlens_test"
    echo "export COSTLENS_TEST_CLICKHOUSE=clickhouse://127.0.0.1:$CH_PORT/costlens_test" >>"$ENV_FILE"
    say "ClickHouse on 127.0.0.1:$CH_PORT"
}

launch_clickhouse() {
    local ch="$DIR/clickhouse"
    clickhouse-server --config-file="$ch/config.xml" --pid-file="$ch/pid" >>"$ch/stdout.log" 2>&1 &
    echo $! >"$ch/launcher.pid"
    for _ in $(seq 450); do  # up to 90 s: a loaded 2-core machine starts it slowly
        clickhouse-client --port "$CH_PORT" --host 127.0.0.1 -q "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

stop_clickhouse() {
    local ch="$DIR/clickhouse" pid
    for f in "$ch/pid" "$ch/launcher.pid"; do
        [ -s "$f" ] || continue
        pid="$(cat "$f")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

case "${1:-}" in
    start)
        mkdir -p "$DIR"
        "$0" stop >/dev/null 2>&1
        : >"$ENV_FILE"
        start_postgres
        start_redis
        start_clickhouse
        grep '^#' "$ENV_FILE" >&2 || true
        ;;
    stop)
        stop_clickhouse
        stop_redis
        stop_postgres
        ;;
    pause)  # stop one server, keeping its data (fault tests): pause postgres|redis|clickhouse
        case "${2:-}" in
            postgres) stop_postgres ;;
            redis) redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1; rm -f "$DIR/redis/pid" ;;
            clickhouse) stop_clickhouse ;;
            *) echo "usage: $0 pause postgres|redis|clickhouse" >&2; exit 2 ;;
        esac
        ;;
    resume)  # start a paused server again on the same port and data (Redis comes back empty)
        case "${2:-}" in
            postgres) launch_postgres "$(pg_bin)" ;;
            redis) launch_redis ;;
            clickhouse) launch_clickhouse ;;
            *) echo "usage: $0 resume postgres|redis|clickhouse" >&2; exit 2 ;;
        esac
        ;;
    *)
        echo "usage: $0 start|stop|pause KIND|resume KIND" >&2
        exit 2
        ;;
esac
