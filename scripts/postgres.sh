#!/usr/bin/env bash
# Start the local PostgreSQL 15 that the test suite uses, and print its URL.
#
# Idempotent: installs PostgreSQL 15 only if it is missing, creates the
# cluster only if it is missing, starts it only if it is down, and creates the
# role and database only if they are absent.  The server listens on loopback
# only.  Everything but the URL goes to stderr, so that
#
#     CUSTODES_TEST_PG_URL="$(scripts/postgres.sh | tail -n 1)"
#
# works.  Run as root (it manages a system service).
set -euo pipefail

VERSION=15
CLUSTER=main
ROLE=custodes
PASSWORD=custodes
DATABASE=custodes_test

say() { echo "postgres.sh: $*" >&2; }

as_postgres() {
  # cd / so that psql does not warn about an unreadable working directory.
  (cd / && runuser -u postgres -- "$@")
}

port_of_cluster() {
  pg_lsclusters -h "$VERSION" "$CLUSTER" 2>/dev/null | awk '{print $3}'
}

if [ "$(id -u)" != 0 ]; then
  # Not root: usable only if someone already set the server up.
  if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
    say "not root; assuming the server on 127.0.0.1:5432 already has role $ROLE and database $DATABASE"
    echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:5432/$DATABASE"
    exit 0
  fi
  say "run me as root (sudo $0): PostgreSQL is not running and I cannot start it"
  exit 1
fi

# Two runs at once (two make test) must not race on start-up or CREATE ROLE.
# The server must not inherit fd 9 (it would hold the lock forever): every
# command that starts it closes fd 9 with 9>&-.
exec 9>/run/lock/custodes-postgres.lock
flock 9

# (1) Install PostgreSQL 15 if it is missing.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -x "/usr/lib/postgresql/$VERSION/bin/postgres" ]; then
  say "installing PostgreSQL $VERSION"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "postgresql-$VERSION" >&2 || apt-get install -y -qq postgresql >&2
fi

# (2) Create the cluster if the package did not (or it was dropped).
if [ -z "$(port_of_cluster)" ]; then
  say "creating cluster $VERSION/$CLUSTER"
  pg_createcluster "$VERSION" "$CLUSTER" >&2
fi

# (3) Loopback only, whatever the config said before.
if [ "$(pg_conftool -s "$VERSION" "$CLUSTER" show listen_addresses 2>/dev/null || true)" != "localhost" ]; then
  pg_conftool "$VERSION" "$CLUSTER" set listen_addresses localhost >&2
  if pg_ctlcluster "$VERSION" "$CLUSTER" status >/dev/null 2>&1; then
    say "restarting to listen on loopback only"
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" restart >&2 9>&-
  fi
fi

# (4) Start it if it is down.
if ! pg_ctlcluster "$VERSION" "$CLUSTER" status >/dev/null 2>&1; then
  say "starting cluster $VERSION/$CLUSTER"
  pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" start >&2 9>&-
fi

PORT="$(port_of_cluster)"
for _ in $(seq 1 120); do
  if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
    break
  fi
  sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "$PORT"; then
  say "PostgreSQL did not become ready on 127.0.0.1:$PORT; see /var/log/postgresql/postgresql-$VERSION-$CLUSTER.log"
  exit 1
fi

# (5) The role (password reset every run, so a stale one is repaired) and the database.
as_postgres psql -q -X -v ON_ERROR_STOP=1 -p "$PORT" -d postgres >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SQL
if [ "$(as_postgres psql -X -tAq -p "$PORT" -d postgres \
  -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
  say "creating database $DATABASE"
  as_postgres createdb -p "$PORT" -O "$ROLE" "$DATABASE" >&2
fi

echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
