#!/usr/bin/env bash
# Re-resolve requirements.txt: the full lock for the Airflow image (and the host test runner).
# Airflow's own constraints file is not reachable from our build hosts, so this is our constraint.
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOP=("apache-airflow==3.3.2" apache-airflow-providers-celery apache-airflow-providers-docker apache-airflow-providers-postgres
     apache-airflow-providers-smtp apache-airflow-providers-standard docker pytest "psycopg[binary]" requests
     # redis (Celery's broker client) needs it below Python 3.11.3, and the image runs Debian 12's
     # 3.11.2; pip evaluates that marker against the host's Python, so it is named here.
     async-timeout
     # celery 5.7 dropped celery.backends.database.retry, which the celery provider (3.26) imports:
     # its workers die at start with "cannot import name 'retry'".
     "celery<5.7"
     # the crontab importer's comment-preserving merge into registry.yaml (round-trip mode; pure
     # Python since 0.19: ruamel.yaml.clib is only its `oldlibyaml` extra)
     ruamel.yaml)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
plats=(); for v in 17 24 27 28 31 34 35 36; do plats+=(--platform "manylinux_2_${v}_x86_64"); done
"$tmp/venv/bin/pip" install -q --dry-run --ignore-installed --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 "${plats[@]}" --target "$tmp/t" \
  --report "$tmp/report.json" "${TOP[@]}"
python3 - "$tmp/report.json" "$ROOT/requirements.txt" "${TOP[@]}" <<'PY'
import json, sys
report, out, top = sys.argv[1], sys.argv[2], sys.argv[3:]
pins = sorted((i["metadata"]["name"].lower(), i["metadata"]["version"]) for i in json.load(open(report))["install"])
with open(out, "w") as f:
    f.write("# Full lock for Downlink's Airflow image and the host-side test runner.\n"
            "# Resolved with pip (binary wheels only, CPython 3.11, manylinux x86_64) from:\n"
            f"#   {' '.join(top)}\n"
            "# Airflow's official constraints file is not reachable from our build hosts, so this file is\n"
            "# the constraint. Regenerate with `make lock`; never edit single pins by hand.\n")
    f.writelines(f"{n}=={v}\n" for n, v in pins)
print(f"requirements.txt: {len(pins)} pins")
PY
