#!/usr/bin/env bash
# A throwaway PostgreSQL cluster in a folder, for tests and local trials.
#
#   infra/postgres.sh [start] DIR [PORT]   start it (initdb on first use), print its SQLAlchemy URL
#   infra/postgres.sh stop DIR             stop it
#
# With PORT it listens on 127.0.0.1:PORT only; without, on a Unix socket in DIR only. The
# superuser `medarena` has a random password (DIR/password) and owns the database `medarena`.
# Idempotent: starting a running cluster only prints its URL; stopping a stopped one does nothing.
# As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

usage() { echo "usage: $0 [start] DIR [PORT] | $0 stop DIR" >&2; exit 2; }
action=start
case "${1:-}" in
  start|stop) action=$1; shift ;;
  ""|-h|--help) usage ;;
esac
[ $# -ge 1 ] || usage
dir=$(realpath -m "$1")
port=${2:-}
data=$dir/data

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "medarena: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); run infra/install-system.sh" >&2
  exit 1
fi

owner=$(id -un)
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}
running() { [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

if [ "$action" = stop ]; then
  [ -d "$data" ] || exit 0
  [ "$(id -u)" -eq 0 ] && owner=$(stat -c %U "$data")
  if running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
  exit 0
fi

if [ -n "$port" ] && ! [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1024 && "$port" -le 65535 ]]; then
  echo "medarena: PORT must be a number from 1024 to 65535, not '$port'" >&2
  exit 2
fi
mkdir -p "$dir"
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  chown postgres: "$dir"
  chmod 700 "$dir"
  if ! runuser -u postgres -- test -w "$dir"; then
    echo "medarena: the postgres user cannot reach $dir : a parent folder is closed to it" >&2
    exit 1
  fi
fi

if [ ! -f "$data/PG_VERSION" ]; then
  rm -rf "$data"
  (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$dir/password")
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/password"
  as_owner "$bin/initdb" -D "$data" -U medarena --pwfile="$dir/password" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  # a throwaway cluster: durability is traded for speed
  as_owner tee -a "$data/postgresql.conf" >/dev/null <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  # only loopback, only with the password
  as_owner tee "$data/pg_hba.conf" >/dev/null <<EOF
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
EOF
  echo "${port}" > "$dir/port"
  rm -f "$dir/created"
fi

saved=$(cat "$dir/port")
if [ "$saved" != "$port" ]; then
  echo "medarena: the cluster in $dir listens on ${saved:-a Unix socket} (PORT ${port:-none} given)" >&2
  exit 2
fi
if [ -n "$port" ]; then
  options="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=''"
  host=127.0.0.1:$port
else
  if [ ${#dir} -gt 90 ]; then
    echo "medarena: $dir is too long for a Unix socket path; give a PORT or a shorter folder" >&2
    exit 2
  fi
  options="-c listen_addresses='' -c unix_socket_directories='$dir'"
  host=
fi
if ! running; then
  as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -o "$options" -w -t 30 start >/dev/null \
    || { tail -n 20 "$dir/server.log" >&2; exit 1; }
fi

password=$(cat "$dir/password")
if [ ! -f "$dir/created" ]; then
  if [ -n "$port" ]; then conn=(-h 127.0.0.1 -p "$port"); else conn=(-h "$dir"); fi
  PGPASSWORD=$password "$bin/createdb" "${conn[@]}" -U medarena medarena
  touch "$dir/created"
fi
if [ -n "$port" ]; then
  echo "postgresql+psycopg://medarena:$password@$host/medarena"
else
  echo "postgresql+psycopg://medarena:$password@/medarena?host=$dir"
fi
