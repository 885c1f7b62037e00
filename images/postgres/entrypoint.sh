#!/usr/bin/env bash
# First start: initdb, then create the Airflow metadata database and the science database
# `archive` (with q3c and pg_sphere), each with its own role. Every start, before clients can
# connect: (re)create the superuser-owned helpers (data-volume-space.sql), then run postgres.
set -euo pipefail
: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD (generated into .env by make up)}"
: "${ARCHIVE_DB_PASSWORD:?set ARCHIVE_DB_PASSWORD (generated into .env by make up)}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -U postgres "$PGDATA" >/dev/null
  cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
max_connections = 200
shared_buffers = 128MB
CONF
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql -v ON_ERROR_STOP=1 -q -U postgres -v apw="$AIRFLOW_DB_PASSWORD" -v xpw="$ARCHIVE_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'apw';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE archive LOGIN PASSWORD :'xpw';
CREATE DATABASE archive OWNER archive;
\connect archive
CREATE EXTENSION IF NOT EXISTS q3c;
CREATE EXTENSION IF NOT EXISTS pg_sphere;
SQL
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "downlink-postgres: initialised databases airflow and archive"
fi
# Local socket only: the healthcheck (TCP) and clients wait until the helpers are in place.
pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
psql -v ON_ERROR_STOP=1 -q -U postgres -d archive -f /usr/local/share/downlink-postgres/data-volume-space.sql
pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
exec postgres -D "$PGDATA"
