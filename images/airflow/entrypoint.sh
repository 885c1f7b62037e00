#!/usr/bin/env bash
# Airflow containers' entrypoint: turn the generated admin password (from .env) into the
# SimpleAuthManager passwords file, then run the command ("airflow scheduler", ...).
set -euo pipefail
if [ -n "${DOWNLINK_ADMIN_PASSWORD:-}" ]; then
  file=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}
  mkdir -p "$(dirname "$file")"
  python3 -c 'import json,os,sys; json.dump({os.environ.get("DOWNLINK_ADMIN_USER","admin"): os.environ["DOWNLINK_ADMIN_PASSWORD"]}, open(sys.argv[1],"w"))' "$file"
  chmod 600 "$file"
fi
exec "$@"
