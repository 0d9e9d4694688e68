#!/usr/bin/env bash
# Throwaway servers for the test suite: PostgreSQL, MariaDB, NATS JetStream
# and Mosquitto, each on a free loopback port with its data under the build
# folder. Nothing here touches a server on a standard port.
#
#   scripts/test-services.sh start     start all four (stopping any left over)
#   scripts/test-services.sh stop      stop them and remove their data
#   scripts/test-services.sh restart NAME   stop and start one, same port and data
#                                      (postgres, mariadb, nats, mosquitto)
#   scripts/test-services.sh browser   install what the command deck's browser
#                                      tests use: Debian's chromium, Node.js and
#                                      playwright-core (tests/deck, from its lock file)
#
# The folder is $AUTOLAKE_TEST_SERVICES, else $CARGO_TARGET_DIR/test-services,
# else ./target/test-services. `start` writes `env` there: shell exports of
#   AUTOLAKE_TEST_SERVICES      this folder
#   AUTOLAKE_TEST_POSTGRES_URL  postgres://postgres@127.0.0.1:PORT/test (trust auth)
#   AUTOLAKE_TEST_MYSQL_URL     mysql://root@127.0.0.1:PORT/test (no password)
#   AUTOLAKE_TEST_NATS_URL      nats://127.0.0.1:PORT (JetStream on)
#   AUTOLAKE_TEST_MQTT_URL      mqtt://127.0.0.1:PORT (anonymous, persistent)
# which `scripts/test.sh` sources before running the tests. A missing server
# binary is installed from Debian's packages when this runs as root (daemons
# the packages would start are held back), and otherwise named in the error.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${AUTOLAKE_TEST_SERVICES:-${CARGO_TARGET_DIR:-$PWD/target}/test-services}"
SERVICES=(postgres mariadb nats mosquitto)

die() {
  echo "test-services: $*" >&2
  exit 1
}

is_root() { [ "$(id -u)" = 0 ]; }

# Installs Debian packages, holding back the services their scripts would
# start on the standard ports.
install_packages() {
  if ! is_root; then
    die "$1 is not installed: install the Debian package(s) ${*:2} (apt-get install ${*:2}), or run the tests as root, which installs them"
  fi
  echo "test-services: installing ${*:2} (for $1)" >&2
  local policy=/usr/sbin/policy-rc.d had_policy=
  if [ -e "$policy" ]; then had_policy=1; mv "$policy" "$policy.autolake"; fi
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  local rc=0
  {
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ] ||
      apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${@:2}" >/dev/null
  } || rc=$?
  if [ "$rc" != 0 ]; then
    # A stale package list: refresh it once and try again.
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${@:2}" >/dev/null && rc=0
  fi
  rm -f "$policy"
  if [ -n "$had_policy" ]; then mv "$policy.autolake" "$policy"; fi
  [ "$rc" = 0 ] || die "apt-get install ${*:2} failed (for $1)"
}

postgres_bin() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$bin" ] && [ -x "$bin/postgres" ]; then
    echo "$bin"
  elif command -v postgres >/dev/null && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v postgres)"
  fi
}

ensure_installed() {
  case "$1" in
    postgres)
      if [ -z "$(postgres_bin)" ] || ! command -v psql >/dev/null; then
        install_packages PostgreSQL postgresql postgresql-client
      fi
      ;;
    mariadb)
      if ! command -v mariadbd >/dev/null && ! [ -x /usr/sbin/mariadbd ]; then
        install_packages MariaDB mariadb-server mariadb-client
      fi
      ;;
    nats)
      command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] ||
        install_packages "NATS" nats-server
      ;;
    mosquitto)
      if ! { command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; } ||
        ! command -v mosquitto_pub >/dev/null; then
        install_packages Mosquitto mosquitto mosquitto-clients
      fi
      ;;
  esac
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_of() { cat "$DIR/$1.port"; }

# Waits until something accepts connections on the port, or the process
# behind the pid file has died.
wait_up() {
  local name=$1 port=$2 log=$3
  local deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$log" >&2 || true
      die "$name did not start on 127.0.0.1:$port within 60 s (log: $log)"
    fi
    if [ -f "$DIR/$name.pid" ] && ! kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
      tail -n 20 "$log" >&2 || true
      die "$name exited while starting (log: $log)"
    fi
    sleep 0.2
  done
}

# Runs a command detached from the caller: no inherited descriptors (a test
# runner waits on those), its own session, output to a log.
spawn() {
  local name=$1
  shift
  setsid "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

# The PostgreSQL cluster's folder. Running as root, the server runs as the
# `postgres` user, who may not be able to reach the build folder (a home of
# mode 700): then the cluster lives in a private temporary folder, recorded
# in postgres.root and removed by `stop`.
postgres_root() {
  if [ -f "$DIR/postgres.root" ]; then
    cat "$DIR/postgres.root"
    return
  fi
  local root="$DIR/postgres"
  if is_root; then
    mkdir -p "$root"
    chown postgres: "$root"
    if ! runuser -u postgres -- test -w "$root"; then
      rmdir "$root"
      root="$(mktemp -d "${TMPDIR:-/tmp}/autolake-test-postgres.XXXXXX")"
      chown postgres: "$root"
    fi
  fi
  echo "$root" >"$DIR/postgres.root"
  echo "$root"
}

as_postgres() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local bin port root log
  bin="$(postgres_bin)"
  port=$(port_of postgres)
  root="$(postgres_root)"
  # The server writes its log itself, so it lies beside the cluster.
  log="$root/postgres.log"
  as_postgres touch "$log"
  if [ ! -f "$root/data/PG_VERSION" ]; then
    as_postgres mkdir -p "$root/data"
    as_postgres "$bin/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >>"$log" 2>&1 ||
      die "initdb failed (log: $log)"
  fi
  as_postgres "$bin/pg_ctl" -D "$root/data" -l "$log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null </dev/null || {
    tail -n 20 "$log" >&2
    die "PostgreSQL did not start on 127.0.0.1:$port (log: $log)"
  }
  head -n 1 "$root/data/postmaster.pid" >"$DIR/postgres.pid"
  wait_up postgres "$port" "$log"
  if ! psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE test" >/dev/null
  fi
}

stop_postgres() {
  local root bin
  [ -f "$DIR/postgres.root" ] || return 0
  root="$(cat "$DIR/postgres.root")"
  bin="$(postgres_bin)"
  if [ -f "$root/data/postmaster.pid" ] && [ -n "$bin" ]; then
    as_postgres "$bin/pg_ctl" -D "$root/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
  stop_pid postgres
}

mariadb_sbin() {
  if command -v mariadbd >/dev/null; then command -v mariadbd; else echo /usr/sbin/mariadbd; fi
}

start_mariadb() {
  local port data="$DIR/mariadb" log="$DIR/mariadb.log" user
  port=$(port_of mariadb)
  user="$(id -un)"
  if [ ! -d "$data/mysql" ]; then
    mkdir -p "$data"
    mariadb-install-db --no-defaults --datadir="$data" --user="$user" \
      --auth-root-authentication-method=normal --skip-test-db >>"$log" 2>&1 ||
      die "mariadb-install-db failed (log: $log)"
  fi
  spawn mariadb "$(mariadb_sbin)" --no-defaults --datadir="$data" --user="$user" \
    --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
    --socket="$DIR/mariadb.sock" --pid-file="$DIR/mariadb.server.pid" \
    --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=64M --max-connections=200
  wait_up mariadb "$port" "$log"
  # Root from 127.0.0.1 without a password, and the `test` database.
  mariadb --no-defaults -S "$DIR/mariadb.sock" -u root -e \
    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; CREATE DATABASE IF NOT EXISTS test" ||
    die "MariaDB started but could not be set up (log: $log)"
}

nats_sbin() {
  if command -v nats-server >/dev/null; then command -v nats-server; else echo /usr/sbin/nats-server; fi
}

start_nats() {
  local port log="$DIR/nats.log"
  port=$(port_of nats)
  mkdir -p "$DIR/nats"
  spawn nats "$(nats_sbin)" -a 127.0.0.1 -p "$port" -js -sd "$DIR/nats"
  wait_up nats "$port" "$log"
}

mosquitto_sbin() {
  if command -v mosquitto >/dev/null; then command -v mosquitto; else echo /usr/sbin/mosquitto; fi
}

start_mosquitto() {
  local port log="$DIR/mosquitto.log"
  port=$(port_of mosquitto)
  mkdir -p "$DIR/mosquitto"
  {
    echo "listener $port 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence true"
    echo "persistence_location $DIR/mosquitto/"
    echo "autosave_interval 1"
    # Run as root, Mosquitto would switch to its own user, who cannot
    # write to the build folder.
    if is_root; then echo "user root"; fi
  } >"$DIR/mosquitto.conf"
  spawn mosquitto "$(mosquitto_sbin)" -c "$DIR/mosquitto.conf"
  wait_up mosquitto "$port" "$log"
}

# Stops the process in NAME.pid: TERM, then KILL after 30 s.
stop_pid() {
  local name=$1 pid
  [ -f "$DIR/$name.pid" ] || return 0
  pid="$(cat "$DIR/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$DIR/$name.pid"
}

stop_one() {
  case "$1" in
    postgres) stop_postgres ;;
    *) stop_pid "$1" ;;
  esac
}

start_one() {
  [ -f "$DIR/$1.port" ] || free_port >"$DIR/$1.port"
  "start_$1"
}

write_env() {
  {
    echo "export AUTOLAKE_TEST_SERVICES='$DIR'"
    echo "export AUTOLAKE_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:$(port_of postgres)/test'"
    echo "export AUTOLAKE_TEST_MYSQL_URL='mysql://root@127.0.0.1:$(port_of mariadb)/test'"
    echo "export AUTOLAKE_TEST_NATS_URL='nats://127.0.0.1:$(port_of nats)'"
    echo "export AUTOLAKE_TEST_MQTT_URL='mqtt://127.0.0.1:$(port_of mosquitto)'"
  } >"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"
}

stop_all() {
  [ -d "$DIR" ] || return 0
  local name
  for name in "${SERVICES[@]}"; do stop_one "$name"; done
  if [ -f "$DIR/postgres.root" ]; then
    local root
    root="$(cat "$DIR/postgres.root")"
    case "$root" in "$DIR"/*) ;; *) rm -rf "$root" ;; esac
  fi
  rm -rf "$DIR"
}

# The deck tests' browser and its driver; nothing is fetched when present.
install_browser() {
  [ -x /usr/bin/chromium ] || install_packages "the command deck tests" chromium
  command -v node >/dev/null && command -v npm >/dev/null ||
    install_packages "the command deck tests" nodejs npm
  if [ ! -f tests/deck/node_modules/playwright-core/package.json ]; then
    echo "test-services: installing playwright-core into tests/deck (npm ci)" >&2
    npm ci --prefix tests/deck --no-audit --no-fund --loglevel=error >/dev/null ||
      die "npm ci --prefix tests/deck failed (is the npm registry reachable?)"
  fi
}

case "${1:-}" in
  browser)
    install_browser
    ;;
  start)
    # Whatever an interrupted run left behind goes first.
    stop_all
    mkdir -p "$DIR"
    for name in "${SERVICES[@]}"; do ensure_installed "$name"; done
    for name in "${SERVICES[@]}"; do
      start_one "$name" || { stop_all; exit 1; }
    done
    write_env
    echo "test-services: PostgreSQL :$(port_of postgres), MariaDB :$(port_of mariadb), NATS :$(port_of nats), Mosquitto :$(port_of mosquitto) (in $DIR)" >&2
    ;;
  stop)
    stop_all
    ;;
  restart)
    name="${2:-}"
    case " ${SERVICES[*]} " in
      *" $name "*) ;;
      *) die "restart: expected one of ${SERVICES[*]}, got '$name'" ;;
    esac
    [ -f "$DIR/$name.port" ] || die "restart: $name is not running from $DIR (run start first)"
    stop_one "$name"
    start_one "$name"
    ;;
  *)
    echo "usage: $0 start | stop | restart postgres|mariadb|nats|mosquitto | browser" >&2
    exit 2
    ;;
esac
