#!/usr/bin/env bash
# A throwaway PostgreSQL for the astro unit tests that need a database (the project's postgres
# image: q3c and pg_sphere, like the stack's), on an internal network of its own, data on a tmpfs.
#   tools/unit-db.sh start TAG NAME   start it (replacing a leftover one); prints the DSN to use
#   tools/unit-db.sh stop NAME        remove it and its network
# The tests reach it as host NAME on network NAME (docker run --network NAME).
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -euo pipefail
cmd=${1:-}
stop() {
  docker rm -f "$1" >/dev/null 2>&1 || true
  docker network rm "$1" >/dev/null 2>&1 || true
}
case $cmd in
  start)
    tag=${2:?usage: unit-db.sh start TAG NAME}; name=${3:?usage: unit-db.sh start TAG NAME}
    stop "$name"
    docker network create --internal "$name" >/dev/null
    docker run -d --name "$name" --network "$name" -e AIRFLOW_DB_PASSWORD=unit -e ARCHIVE_DB_PASSWORD=unit \
      --tmpfs /var/lib/postgresql/data:uid="$(docker run --rm --entrypoint id "downlink/postgres:$tag" -u)" \
      "downlink/postgres:$tag" >/dev/null
    for _ in $(seq 1 120); do
      if docker exec "$name" pg_isready -q -h 127.0.0.1 -U postgres 2>/dev/null; then
        echo "postgresql://archive:unit@$name:5432/archive"
        exit 0
      fi
      [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || break
      sleep 0.5
    done
    docker logs --tail 20 "$name" >&2 || true
    stop "$name"
    echo "unit-db: the test database did not start" >&2
    exit 1
    ;;
  stop) stop "${2:?usage: unit-db.sh stop NAME}" ;;
  *) echo "usage: unit-db.sh start TAG NAME | stop NAME" >&2; exit 2 ;;
esac
