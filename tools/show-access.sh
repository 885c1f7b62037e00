#!/usr/bin/env bash
# Print how to reach the running stack (addresses come from the environment or .env).
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
get() { local v="${!1:-}"; [ -n "$v" ] || v=$(grep -E "^$1=" "$ROOT/.env" 2>/dev/null | tail -n1 | cut -d= -f2-); echo "${v:-$2}"; }
bind=$(get DOWNLINK_BIND 127.0.0.1)
# The address the team uses (DOWNLINK_PUBLIC_URL, as in the mails' links); else this machine's port.
web=$(get DOWNLINK_PUBLIC_URL "http://$bind:$(get DOWNLINK_WEB_PORT 8080)")
cat <<INFO

Downlink is up (images downlink/*:$(get DOWNLINK_TAG ?)).
  Airflow web UI   $web   login: $(get DOWNLINK_ADMIN_USER admin) / $(get DOWNLINK_ADMIN_PASSWORD ?)
  Mail catcher     http://$bind:$(get DOWNLINK_MAIL_PORT 1080)   (every mail the stack sends; REST API: /email)
  Science database psql "postgresql://archive:$(get ARCHIVE_DB_PASSWORD ?)@$bind:$(get DOWNLINK_DB_PORT 5433)/archive"
                   or: docker compose exec postgres psql -U archive archive
  Team accounts    make user-add NAME=alice ROLE=viewer|operator|admin   (also user-list, user-role, user-reset, user-remove)
  Trigger a DAG    docker compose exec scheduler airflow dags trigger astro_env_check
The password and all settings are in .env (untracked). Stop with 'make down'.
INFO
