#!/usr/bin/env bash
# Roll a newly built tag into the running stack without stopping anything: steps that start
# from now on run downlink/astro:TAG (Airflow Variable downlink_image_tag, read when a task
# starts); tasks already running finish on the image they started with. The registry
# (dags/registry.yaml) is re-read at once. Airflow's own services keep running; `make up`
# restarts them when their image changed (that cuts running tasks, so it is not done here).
# Usage: tools/deploy.sh TAG   (make deploy: build, check, then this)
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:?usage: deploy.sh TAG}
cd "$ROOT"
compose() { docker compose "$@"; }

if ! compose ps --status running --services 2>/dev/null | grep -qx scheduler; then
  echo "deploy: the stack is not running; 'make up' starts it with tag $TAG" >&2
  exit 1
fi
docker image inspect "downlink/astro:$TAG" >/dev/null 2>&1 || { echo "deploy: downlink/astro:$TAG is not built (make build)" >&2; exit 1; }
compose exec -T scheduler airflow variables set downlink_image_tag "$TAG" >/dev/null
# Parse the DAG files now rather than at the next refresh interval.
compose exec -T dag-processor airflow dags reserialize >/dev/null 2>&1 || true
echo "deployed: steps now start downlink/astro:$TAG (running tasks finish on their own image)"
running=$(docker inspect --format '{{.Image}}' "$(compose ps -q scheduler)")
built=$(docker image inspect --format '{{.Id}}' "downlink/airflow:$TAG" 2>/dev/null || true)
if [ -n "$built" ] && [ "$running" != "$built" ]; then
  echo "note: Airflow's own image changed; 'make up' restarts its services with it (running tasks are cut)"
fi
