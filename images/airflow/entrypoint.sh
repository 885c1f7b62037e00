#!/usr/bin/env bash
# Airflow containers' entrypoint: run the command ("airflow scheduler", ...). Accounts live in the
# users file on the accounts volume (hashed; airflow-init creates the admin), so nothing is
# written here any more: no password file in clear.
set -euo pipefail
exec "$@"
