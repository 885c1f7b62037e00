#!/usr/bin/env bash
# Back up and restore Downlink's two databases: `archive` (the science index) and `airflow`
# (Airflow's metadata), from and into the running stack's `postgres` service.
#
#   tools/backup.sh dump [DIR]                        (make backup [BACKUP_DIR=DIR])
#       DIR/<UTC time>/archive.dump, airflow.dump (pg_dump custom format) and MANIFEST.json
#       (sizes, sha256, every table's row count, extensions, owner, Downlink tag). Default DIR:
#       backups/ in the checkout. Each database is dumped from one snapshot, and the row counts
#       are read in that same snapshot, so they match the dump exactly. Written into a hidden
#       temporary directory and renamed when complete: a failed dump leaves nothing behind.
#   tools/backup.sh restore DIR [--into-new SUFFIX]   (make restore BACKUP=DIR [INTO_NEW=SUFFIX])
#       Checks every file's sha256 against the manifest first (a corrupt backup is refused and
#       nothing is touched). Then restores into new databases and checks their row counts and
#       extensions against the manifest.
#       --into-new SUFFIX: only that, into archive_SUFFIX and airflow_SUFFIX (to inspect a
#         backup, or test it); the live databases and services are not touched.
#       default: restore into archive_restore/airflow_restore, check them, stop the Airflow
#         services (scheduler, dag-processor, triggerer, api-server), swap the databases by
#         renaming in one transaction (the old ones are kept as <db>_before_restore_<time>),
#         then start the services again and wait until they are healthy.
#   tools/backup.sh prune [DIR] [--keep N] [--dry-run]  (make backup runs it after each dump)
#       Rotation: keeps the newest N complete backups of DIR (default backups/; N: --keep, else
#       DOWNLINK_KEEP_BACKUPS, default 14) and deletes the older ones. Only folders named like a
#       dump (<UTC time>, holding a MANIFEST.json) are considered; --dry-run lists them only.
#
# The compose project is DOWNLINK_PROJECT (environment, then .env), as for docker compose.
# Roles and passwords are not in the dumps (they live in .env and are created by the postgres
# image); restoring Airflow's metadata elsewhere needs the same AIRFLOW_FERNET_KEY.
# Exit codes: 0 done; 1 failed (the reason is on stderr); 2 bad usage.
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATABASES=(archive airflow)
AIRFLOW_WRITERS=(api-server scheduler dag-processor triggerer)

die() { echo "backup: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
# get NAME [DEFAULT]: the environment first, then .env (as docker compose does).
get() { local v="${!1:-}"; [ -n "$v" ] || v=$(grep -E "^$1=" "$ROOT/.env" 2>/dev/null | tail -n1 | cut -d= -f2-); echo "${v:-${2:-}}"; }
# dotenv NAME: the value written in .env (make build/env record the deployed tag there).
dotenv() { grep -E "^$1=" "$ROOT/.env" 2>/dev/null | tail -n1 | cut -d= -f2- || true; }
compose() { (cd "$ROOT" && docker compose "$@"); }  # as `make` runs it (with any override file)
pg() { compose exec -T postgres "$@"; }
# psql_c DB SQL: run SQL as the superuser, unaligned output, stop at the first error.
psql_c() { pg psql -U postgres -d "$1" -AtqX -v ON_ERROR_STOP=1 -c "$2"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
human() { numfmt --to=iec --suffix=B --format=%.1f "$1"; }
PROJECT=$(get DOWNLINK_PROJECT downlink)

# Every table's row count in the current database, as one line of JSON: {"table": n, ...}
# (schema-qualified outside `public`). Counted by SQL, so it can run inside a snapshot.
COUNTS_SQL="SELECT coalesce(json_object_agg(name, n ORDER BY name), '{}') FROM (
  SELECT CASE WHEN ns.nspname = 'public' THEN c.relname ELSE ns.nspname || '.' || c.relname END AS name,
         (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', ns.nspname, c.relname),
                                               false, true, '')))[1]::text::bigint AS n
  FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
    AND ns.nspname NOT IN ('pg_catalog', 'information_schema') AND ns.nspname NOT LIKE 'pg\_%') t"
EXTENSIONS_SQL="SELECT coalesce(json_agg(extname ORDER BY extname), '[]') FROM pg_extension WHERE extname <> 'plpgsql'"

require_stack() {
  docker info >/dev/null 2>&1 || die "the Docker engine is not answering (is dockerd running? 'make up' starts it)"
  local running
  running=$(compose ps --status running --services 2>&1) || die "docker compose failed for project '$PROJECT': $running"
  grep -qx postgres <<<"$running" \
    || die "the stack (compose project '$PROJECT') is not running: its postgres service is not up. Start it with 'make up'."
  local i
  for i in $(seq 1 30); do
    pg pg_isready -q -U postgres >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "postgres in project '$PROJECT' is running but does not accept connections"
}

db_exists() { [ "$(psql_c postgres "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]; }

# Small JSON jobs, in Python (the host has python3: make up needs it too).
py() { python3 - "$@"; }

# ----------------------------------------------------------------------------------------------
# dump
# ----------------------------------------------------------------------------------------------

# dump_db DB OUTDIR: pg_dump DB from one exported snapshot, reading the row counts in that same
# snapshot; writes OUTDIR/DB.dump and OUTDIR/.DB.json (counts, extensions, owner, timing).
dump_db() {
  local db=$1 out=$2 snapshot counts extensions owner started seconds
  # A session that holds the snapshot open until pg_dump is done (psql flushes each result).
  coproc SNAP { pg psql -U postgres -d "$db" -AtqX -v ON_ERROR_STOP=1 2>&1; }
  SNAP_PID_SAVED=$SNAP_PID
  echo "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT pg_export_snapshot();" >&"${SNAP[1]}"
  IFS= read -r -t 60 snapshot <&"${SNAP[0]}" || die "could not open a snapshot of database $db"
  [[ $snapshot =~ ^[0-9A-F]+-[0-9A-F]+-[0-9]+$ ]] || die "could not open a snapshot of database $db: $snapshot"
  echo "$COUNTS_SQL;" >&"${SNAP[1]}"
  IFS= read -r -t 3600 counts <&"${SNAP[0]}" || die "could not count the rows of database $db"
  echo "$EXTENSIONS_SQL;" >&"${SNAP[1]}"
  IFS= read -r -t 60 extensions <&"${SNAP[0]}" || die "could not list the extensions of database $db"
  echo "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database();" >&"${SNAP[1]}"
  IFS= read -r -t 60 owner <&"${SNAP[0]}" || die "could not read the owner of database $db"
  [[ $counts == \{* ]] || die "could not count the rows of database $db: $counts"
  started=$(now)
  pg pg_dump -U postgres -Fc --snapshot="$snapshot" "$db" >"$out/$db.dump" \
    || die "pg_dump of database $db failed"
  seconds=$(elapsed "$started")
  echo "COMMIT;" >&"${SNAP[1]}"
  exec {SNAP[1]}>&-
  wait "$SNAP_PID_SAVED" || true
  SNAP_PID_SAVED=
  printf '{"database": "%s", "owner": "%s", "seconds": %s, "extensions": %s, "row_counts": %s}\n' \
    "$db" "$owner" "$seconds" "$extensions" "$counts" >"$out/.$db.json"
  echo "  $db.dump  $(human "$(stat -c %s "$out/$db.dump")")  in ${seconds} s  ($(py "$out/.$db.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["row_counts"]
print(f"{len(c)} tables, {sum(c.values())} rows")
PY
))"
}

cmd_dump() {
  [ $# -le 1 ] || usage
  local parent=${1:-$ROOT/backups} stamp final tmp db
  require_stack
  umask 077  # the dumps hold the whole archive and Airflow's (encrypted) connections
  mkdir -p "$parent" || die "cannot create $parent"
  parent=$(cd "$parent" && pwd)
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  final=$parent/$stamp
  [ ! -e "$final" ] || die "$final already exists (two dumps in the same second?)"
  tmp=$(mktemp -d "$parent/.partial-$stamp.XXXXXX")
  SNAP_PID_SAVED=
  # shellcheck disable=SC2064
  trap "rc=\$?; [ -z \"\${SNAP_PID_SAVED:-}\" ] || kill \"\$SNAP_PID_SAVED\" 2>/dev/null; rm -rf '$tmp'; [ \$rc -eq 0 ] || echo 'backup: dump failed; nothing was written' >&2" EXIT
  echo "dumping project '$PROJECT' into $final"
  local started_all
  started_all=$(now)
  for db in "${DATABASES[@]}"; do
    dump_db "$db" "$tmp"
  done
  local fernet_fp=""
  [ -z "$(get AIRFLOW_FERNET_KEY)" ] || fernet_fp=$(printf %s "$(get AIRFLOW_FERNET_KEY)" | sha256sum | cut -c1-16)
  py "$tmp" "$stamp" "$PROJECT" "$(dotenv DOWNLINK_TAG)" "$(get DOWNLINK_TAG)" \
    "$(docker inspect --format '{{.Config.Image}}' "$(compose ps -q postgres)")" \
    "$(psql_c postgres 'SHOW server_version')" "$fernet_fp" "${DATABASES[@]}" <<'PY'
import hashlib, json, os, sys
tmp, stamp, project, tag_env_file, tag_env, image, version, fernet_fp, *dbs = sys.argv[1:]
manifest = {
    "format": 1,
    "created_utc": stamp,
    "project": project,
    "downlink_tag": tag_env_file or tag_env,
    "postgres_image": image,
    "postgres_version": version,
    "fernet_key_sha256_16": fernet_fp,
    "databases": {},
    "files": {},
}
for db in dbs:
    meta = json.load(open(os.path.join(tmp, f".{db}.json")))
    os.remove(os.path.join(tmp, f".{db}.json"))
    name = f"{db}.dump"
    h = hashlib.sha256()
    with open(os.path.join(tmp, name), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    manifest["files"][name] = {"database": db, "bytes": os.path.getsize(os.path.join(tmp, name)), "sha256": h.hexdigest()}
    manifest["databases"][db] = {"file": name, **meta}
with open(os.path.join(tmp, "MANIFEST.json"), "w") as fh:
    json.dump(manifest, fh, indent=2, sort_keys=True)
    fh.write("\n")
PY
  sync -f "$tmp" 2>/dev/null || true
  mv -T "$tmp" "$final"
  trap - EXIT
  echo "backup complete in $(elapsed "$started_all") s: $final ($(du -sh "$final" | cut -f1))"
  echo "restore with: make restore BACKUP=$final   (or inspect it: tools/backup.sh restore $final --into-new inspect)"
}

# ----------------------------------------------------------------------------------------------
# restore
# ----------------------------------------------------------------------------------------------

# verify_backup DIR: the manifest is readable and every file's size and sha256 match it.
verify_backup() {
  py "$1" "${DATABASES[@]}" <<'PY' || exit 1
import hashlib, json, os, sys
d, *dbs = sys.argv[1:]
def fail(msg):
    print(f"backup: {msg}; refusing to restore (nothing was changed)", file=sys.stderr)
    sys.exit(1)
path = os.path.join(d, "MANIFEST.json")
try:
    manifest = json.load(open(path))
except (OSError, ValueError) as exc:
    fail(f"{path}: not a readable backup manifest ({exc})")
for db in dbs:
    if db not in manifest.get("databases", {}):
        fail(f"{path}: has no entry for database {db}")
for name, meta in sorted(manifest["files"].items()):
    f = os.path.join(d, name)
    if not os.path.isfile(f):
        fail(f"{f}: missing")
    if os.path.getsize(f) != meta["bytes"]:
        fail(f"{f}: size {os.path.getsize(f)} bytes, the manifest says {meta['bytes']} (truncated or corrupt)")
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != meta["sha256"]:
        fail(f"{f}: sha256 {h.hexdigest()} does not match the manifest ({meta['sha256']}): the file is corrupt")
print(f"verified {len(manifest['files'])} files against {path}")
PY
}

manifest_get() {  # manifest_get DIR DB FIELD
  py "$1/MANIFEST.json" "$2" "$3" <<'PY'
import json, sys
print(json.load(open(sys.argv[1]))["databases"][sys.argv[2]][sys.argv[3]])
PY
}

# restore_db DIR DB TARGET: create TARGET (owned by the dumped database's owner), restore the
# dump into it in one transaction, then check its row counts and extensions against the manifest.
restore_db() {
  local dir=$1 db=$2 target=$3 owner file started seconds counts extensions
  owner=$(manifest_get "$dir" "$db" owner)
  file=$dir/$(manifest_get "$dir" "$db" file)
  psql_c postgres "SELECT 1 FROM pg_roles WHERE rolname = '$owner'" | grep -qx 1 \
    || die "role $owner (owner of $db) does not exist in this stack's postgres"
  psql_c postgres "CREATE DATABASE \"$target\" OWNER \"$owner\" TEMPLATE template0" >/dev/null \
    || die "could not create database $target"
  started=$(now)
  if ! pg pg_restore -U postgres -d "$target" --exit-on-error --single-transaction <"$file"; then
    psql_c postgres "DROP DATABASE IF EXISTS \"$target\"" >/dev/null || true
    die "pg_restore of $file into $target failed (it was dropped again)"
  fi
  seconds=$(elapsed "$started")
  counts=$(psql_c "$target" "$COUNTS_SQL") || die "could not count the rows of $target"
  extensions=$(psql_c "$target" "$EXTENSIONS_SQL") || die "could not list the extensions of $target"
  py "$dir/MANIFEST.json" "$db" "$target" "$counts" "$extensions" "$seconds" <<'PY' || return 1
import json, sys
path, db, target, counts, extensions, seconds = sys.argv[1:]
want = json.load(open(path))["databases"][db]
got, got_ext = json.loads(counts), json.loads(extensions)
problems = [f"{t}: {want['row_counts'].get(t)} rows in the backup, {got.get(t)} restored"
            for t in sorted(set(want["row_counts"]) | set(got)) if want["row_counts"].get(t) != got.get(t)]
problems += [f"extension {e} missing" for e in want["extensions"] if e not in got_ext]
if problems:
    print(f"backup: {target} does not match the backup of {db}:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"  {db} -> {target}: restored in {seconds} s; {len(got)} tables, {sum(got.values())} rows, "
      f"extensions {', '.join(got_ext) or 'none'}: all match the manifest")
PY
}

# wait_healthy SERVICE...: until each service's container reports healthy (or has no healthcheck).
wait_healthy() {
  local deadline=$((SECONDS + 600)) svc id status
  for svc in "$@"; do
    while :; do
      id=$(compose ps -q "$svc")
      status=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
      case $status in healthy|running) break ;; esac
      [ $SECONDS -lt $deadline ] || die "$svc is not healthy after the restore ($status); see: docker compose logs $svc"
      sleep 3
    done
  done
}

cmd_restore() {
  local dir="" suffix=""
  while [ $# -gt 0 ]; do
    case $1 in
      --into-new) [ $# -ge 2 ] || usage; suffix=$2; shift 2 ;;
      --into-new=*) suffix=${1#*=}; shift ;;
      -h|--help) usage ;;
      -*) echo "backup: unknown option $1" >&2; usage ;;
      *) [ -z "$dir" ] || usage; dir=$1; shift ;;
    esac
  done
  [ -n "$dir" ] || usage
  [ -d "$dir" ] || die "$dir: no such backup directory"
  dir=$(cd "$dir" && pwd)
  verify_backup "$dir"
  require_stack
  local fp_backup fp_here=""
  fp_backup=$(py "$dir/MANIFEST.json" <<'PY'
import json, sys
print(json.load(open(sys.argv[1])).get("fernet_key_sha256_16", ""))
PY
)
  [ -z "$(get AIRFLOW_FERNET_KEY)" ] || fp_here=$(printf %s "$(get AIRFLOW_FERNET_KEY)" | sha256sum | cut -c1-16)
  if [ -n "$fp_backup" ] && [ "$fp_backup" != "$fp_here" ]; then
    echo "warning: this stack's AIRFLOW_FERNET_KEY differs from the one of the backup: Airflow cannot decrypt" \
         "the restored connections and variables until .env has the backup's key" >&2
  fi
  local db started
  started=$(now)

  if [ -n "$suffix" ]; then
    [[ $suffix =~ ^[a-z0-9_]{1,30}$ ]] || die "--into-new: use lower-case letters, digits and _ (got '$suffix')"
    for db in "${DATABASES[@]}"; do
      ! db_exists "${db}_$suffix" || die "database ${db}_$suffix already exists; drop it first: $(drop_hint "${db}_$suffix")"
    done
    echo "restoring $dir into new databases (the live ones are not touched)"
    for db in "${DATABASES[@]}"; do
      restore_db "$dir" "$db" "${db}_$suffix" || die "the restored database ${db}_$suffix is kept for inspection; drop it with: $(drop_hint "${db}_$suffix")"
    done
    echo "restored in $(elapsed "$started") s. Inspect: docker compose exec postgres psql -U postgres archive_$suffix"
    echo "drop them when done:"
    for db in "${DATABASES[@]}"; do echo "  $(drop_hint "${db}_$suffix")"; done
    return 0
  fi

  # 1. Restore beside the live databases and check; nothing is stopped yet.
  echo "restoring $dir into project '$PROJECT' (checked copies first, then a swap)"
  for db in "${DATABASES[@]}"; do
    if db_exists "${db}_restore"; then
      echo "  dropping ${db}_restore left by an earlier restore that did not finish"
      psql_c postgres "DROP DATABASE \"${db}_restore\" WITH (FORCE)" >/dev/null
    fi
  done
  for db in "${DATABASES[@]}"; do
    restore_db "$dir" "$db" "${db}_restore" \
      || die "nothing was swapped; the live databases are unchanged. The copies are kept for inspection: $(drop_hint "${db}_restore")"
  done

  # 2. Stop Airflow's writers, swap in one transaction, start them again (also on failure).
  local stamp stopped=() svc steps
  STOPPED_AT=$(now)
  stamp=$(date -u +%Y%m%d_%H%M%S)
  local running
  running=$(compose ps --status running --services)
  for svc in "${AIRFLOW_WRITERS[@]}"; do grep -qx "$svc" <<<"$running" && stopped+=("$svc"); done
  steps=$(docker ps --filter "network=$PROJECT-net" --format '{{.Names}} {{.Label "com.docker.compose.project"}}' | awk -v p="$PROJECT" '$2 != p { print $1 }')
  [ -z "$steps" ] || echo "  note: step containers still running; their database connections will be cut: $(echo $steps)"
  RESTART_SERVICES="${stopped[*]}"
  trap 'on_swap_exit' EXIT
  if [ ${#stopped[@]} -gt 0 ]; then
    echo "  stopping ${stopped[*]}"
    STOPPED_AT=$(now)
    compose stop "${stopped[@]}" >/dev/null 2>&1 || die "could not stop ${stopped[*]}"
    echo "  stopped in $(elapsed "$STOPPED_AT") s"
  fi
  SWAP_LOCKED=1
  for db in "${DATABASES[@]}"; do
    ! db_exists "$db" || psql_c postgres "ALTER DATABASE \"$db\" ALLOW_CONNECTIONS false" >/dev/null
  done
  psql_c postgres "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                   WHERE datname IN ('archive', 'airflow') AND pid <> pg_backend_pid()" >/dev/null
  local sql="BEGIN;" i
  for db in "${DATABASES[@]}"; do
    if db_exists "$db"; then sql+=" ALTER DATABASE \"$db\" RENAME TO \"${db}_before_restore_$stamp\";"; fi
    sql+=" ALTER DATABASE \"${db}_restore\" RENAME TO \"$db\";"
  done
  sql+=" COMMIT;"
  for i in $(seq 1 20); do  # terminated sessions take a moment to go
    if psql_c postgres "$sql" >/dev/null 2>&1; then SWAP_LOCKED=; break; fi
    sleep 1
  done
  [ -z "$SWAP_LOCKED" ] || { psql_c postgres "$sql" >&2 || true; die "the swap failed; the live databases are unchanged"; }
  for db in "${DATABASES[@]}"; do
    ! db_exists "${db}_before_restore_$stamp" \
      || psql_c postgres "ALTER DATABASE \"${db}_before_restore_$stamp\" ALLOW_CONNECTIONS true" >/dev/null
  done
  echo "  swapped: ${DATABASES[*]} are now the backup's; the old ones are kept as <db>_before_restore_$stamp"
  trap - EXIT
  restart_writers
  echo "restore complete in $(elapsed "$started") s (backup of $(py "$dir/MANIFEST.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); print(f"{m['created_utc']}, project {m['project']}, tag {m['downlink_tag']}")
PY
))."
  echo "When you no longer need the old databases, drop them:"
  for db in "${DATABASES[@]}"; do
    ! db_exists "${db}_before_restore_$stamp" || echo "  $(drop_hint "${db}_before_restore_$stamp")"
  done
}

drop_hint() {
  local p=""
  [ "$PROJECT" = downlink ] || p="DOWNLINK_PROJECT=$PROJECT "
  echo "${p}docker compose exec postgres dropdb -U postgres $1"
}

restart_writers() {
  [ -n "${RESTART_SERVICES:-}" ] || return 0
  # shellcheck disable=SC2086
  echo "  starting $RESTART_SERVICES"
  local restarted_at
  restarted_at=$(now)
  # shellcheck disable=SC2086
  compose start $RESTART_SERVICES >/dev/null 2>&1 || die "could not start $RESTART_SERVICES again: run 'make up'"
  # shellcheck disable=SC2086
  wait_healthy $RESTART_SERVICES
  echo "  Airflow is healthy again after $(elapsed "$restarted_at") s (its services were down for $(elapsed "$STOPPED_AT") s)"
  RESTART_SERVICES=
}

on_swap_exit() {
  local rc=$?
  if [ -n "${SWAP_LOCKED:-}" ]; then
    local db
    for db in "${DATABASES[@]}"; do
      psql_c postgres "ALTER DATABASE \"$db\" ALLOW_CONNECTIONS true" >/dev/null 2>&1 || true
    done
  fi
  restart_writers || true
  exit "$rc"
}

# ----------------------------------------------------------------------------------------------
# prune (rotation)
# ----------------------------------------------------------------------------------------------

cmd_prune() {
  local parent="" keep="" dry_run="" d
  while [ $# -gt 0 ]; do
    case $1 in
      --keep) [ $# -ge 2 ] || usage; keep=$2; shift 2 ;;
      --keep=*) keep=${1#*=}; shift ;;
      --dry-run) dry_run=1; shift ;;
      -*) echo "backup: unknown option $1" >&2; usage ;;
      *) [ -z "$parent" ] || usage; parent=$1; shift ;;
    esac
  done
  parent=${parent:-$ROOT/backups}
  keep=${keep:-$(get DOWNLINK_KEEP_BACKUPS 14)}
  [[ $keep =~ ^[0-9]+$ ]] && [ "$keep" -ge 1 ] || die "keep at least 1 backup (got '$keep')"
  [ -d "$parent" ] || { echo "no backups in $parent"; return 0; }
  # Newest first: the names are UTC times, so they sort by age.
  local backups=()
  while IFS= read -r d; do
    [ -f "$parent/$d/MANIFEST.json" ] && [ ! -L "$parent/$d" ] && backups+=("$d")
  done < <(ls -1 "$parent" | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort -r)
  local old=("${backups[@]:$keep}")
  if [ ${#old[@]} -eq 0 ]; then
    echo "backup rotation: ${#backups[@]} backups in $parent, keeping up to $keep: nothing to delete"
    return 0
  fi
  for d in "${old[@]}"; do
    if [ -n "$dry_run" ]; then
      echo "would delete $parent/$d ($(du -sh "$parent/$d" | cut -f1))"
    else
      echo "deleting $parent/$d ($(du -sh "$parent/$d" | cut -f1))"
      rm -rf -- "${parent:?}/$d"
    fi
  done
  echo "backup rotation: $([ -n "$dry_run" ] && echo would keep || echo kept) the newest $keep of ${#backups[@]} backups in $parent"
}

trap 'exit 130' INT  # so the EXIT traps clean up (partial dump; re-allow connections, restart Airflow)
trap 'exit 143' TERM
case "${1:-}" in
  dump) shift; cmd_dump "$@" ;;
  restore) shift; cmd_restore "$@" ;;
  prune) shift; cmd_prune "$@" ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
