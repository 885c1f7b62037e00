#!/usr/bin/env bash
# Run the containers' healthchecks for Podman on a host without systemd.
# Podman schedules each container's healthcheck with a systemd timer; where systemd is not PID 1
# (a host that is itself a container, as CI here) no check ever runs ("unable to get systemd
# connection to add healthchecks"), every service stays "starting", and `docker compose up --wait`
# and `depends_on: service_healthy` never finish. This loop does what the timers would: each
# running container's check (`podman healthcheck run`) once per its own interval. Podman itself
# keeps the streak, the retries and the start period. RHEL and other systemd hosts do not need it
# (tools/bootstrap.sh starts it only without systemd).
# Usage: tools/podman-healthchecks.sh   (runs until killed; same CONTAINERS_CONF as the service)
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -uo pipefail
declare -A interval next
while true; do
  now=$(date +%s)
  for id in $(podman ps -q --no-trunc 2>/dev/null); do
    if [ -z "${interval[$id]:-}" ]; then
      ns=$(podman inspect --format '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Interval}}{{end}}' "$id" 2>/dev/null || true)
      # No healthcheck: 0, never checked. Docker's default interval is 30 s.
      if [ -z "$ns" ]; then interval[$id]=0; elif [ "$ns" -gt 0 ] 2>/dev/null; then interval[$id]=$(( (ns + 999999999) / 1000000000 )); else interval[$id]=30; fi
      next[$id]=$now
    fi
    [ "${interval[$id]}" -gt 0 ] && [ "$now" -ge "${next[$id]}" ] || continue
    next[$id]=$((now + interval[$id]))
    podman healthcheck run "$id" >/dev/null 2>&1 &
  done
  wait
  sleep 1
done
