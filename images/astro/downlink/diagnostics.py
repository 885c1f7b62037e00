"""`downlink diagnostics --night YYYY-MM-DD`: the chain checks itself.

Checks (each stored in the `diagnostics` table, latest result per night and check):
  disk_space       free space on the data volume >= DOWNLINK_MIN_FREE_GB (default 1 GB)
  database         the archive database answers
  files_accounted  every file in the night's manifest is archived or quarantined (nothing lost);
                   a slow transfer still pending is named with its reason
  indexed          every archived file has a row in observations (downloaded = archived = indexed)
  science_reduced  every science frame is reduced or quarantined with a reason
Exit codes: 0 all checks pass; 1 a check failed (each failure printed with its numbers); 2 bad usage.
"""
import json
import os
import shutil

from psycopg.types.json import Jsonb

from downlink import StepError, db, layout, runinfo, settings
from downlink.download import pending_transfers
from downlink.quarantine import records

GB = 1024 ** 3


def add_parser(sub):
    p = sub.add_parser("diagnostics", help="check disk, database and the night's counts", description=__doc__)
    p.add_argument("--night", required=True)
    p.add_argument("--min-free-gb", type=float, default=settings.get("min_free_gb"),
                   help="free space each volume must keep (default: $DOWNLINK_MIN_FREE_GB or %(default)s)")
    return p


def check(name, ok, message, **detail):
    return {"check_name": name, "ok": bool(ok), "message": message, "detail": detail}


def disk_check(root, min_free_gb):
    usage = shutil.disk_usage(root)
    return space_check(usage.total, usage.free, root, min_free_gb)


def space_check(total_bytes, free_bytes, where, min_free_gb):
    """The disk_space check of a file system measured elsewhere (bytes; free: what non-root may use)."""
    free = free_bytes / GB
    return check("disk_space", free >= min_free_gb,
                 f"{free:.1f} GB free of {total_bytes / GB:.1f} GB on {where} (threshold {min_free_gb:g} GB)",
                 free_gb=round(free, 3), total_gb=round(total_bytes / GB, 3), threshold_gb=min_free_gb)


def manifest_names(night):
    path = os.path.join(layout.night_dir("staging", night), ".manifest.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return {entry["name"] for entry in json.load(fh)["files"]}


def file_checks(night, conn):
    raw = set(layout.files_in(layout.night_dir("raw", night)))
    quarantined = {}
    for rec in records(night):
        quarantined.setdefault(rec["stage"], set()).add(rec["filename"])
    results = []
    listed = manifest_names(night)
    if listed is None:
        results.append(check("files_accounted", False, "no manifest recorded for this night: was download run?"))
    else:
        rejected = quarantined.get("download", set()) | quarantined.get("archive", set())
        missing = sorted(listed - raw - rejected)
        slow = {n: r for n, r in pending_transfers(night).items() if n in missing}
        lost = [n for n in missing if n not in slow]
        results.append(check("files_accounted", not missing,
                             f"{len(listed)} listed = {len(listed & raw)} archived + {len(listed & rejected - raw)} quarantined"
                             + ("; still transferring: " + "; ".join(f"{n} ({r})" for n, r in slow.items()) if slow else "")
                             + (f"; missing: {lost}" if lost else ""),
                             listed=len(listed), archived=len(listed & raw), quarantined=len(listed & rejected - raw),
                             missing=missing, pending=slow))
    indexed = {row[0] for row in conn.execute("SELECT filename FROM observations WHERE night = %s", (night,))}
    unindexed = sorted(raw - indexed - quarantined.get("index", set()))
    results.append(check("indexed", not unindexed,
                         f"{len(raw)} archived, {len(indexed)} indexed, {len(quarantined.get('index', ()))} unreadable"
                         + (f"; not indexed: {unindexed}" if unindexed else ""),
                         archived=len(raw), indexed=len(indexed), not_indexed=unindexed))
    science = {row[0] for row in conn.execute(
        "SELECT filename FROM observations WHERE night = %s AND imagetyp = 'object'", (night,))}
    reduced = {row[0] for row in conn.execute(
        "SELECT o.filename FROM reduced_frames r JOIN observations o USING (obs_id) WHERE o.night = %s", (night,))}
    unreduced = sorted(science - reduced - quarantined.get("calibrate", set()))
    results.append(check("science_reduced", not unreduced,
                         f"{len(science)} science frames = {len(science & reduced)} reduced + "
                         f"{len(science & quarantined.get('calibrate', set()))} quarantined"
                         + (f"; unaccounted: {unreduced}" if unreduced else ""),
                         science=len(science), reduced=len(science & reduced), unaccounted=unreduced))
    return results


def store(conn, night, results):
    for r in results:
        conn.execute(
            "INSERT INTO diagnostics (night, check_name, ok, detail, message, run_id) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (night, check_name) DO UPDATE SET ok = EXCLUDED.ok, detail = EXCLUDED.detail, "
            "message = EXCLUDED.message, run_id = EXCLUDED.run_id, checked_at = now()",
            (night, r["check_name"], r["ok"], Jsonb(r["detail"]), r["message"], runinfo.run_id()))


def run(args):
    night = layout.parse_night(args.night)
    results = [disk_check(layout.data_root(), args.min_free_gb)]
    try:
        conn = db.connect()
    except StepError as exc:
        results.append(check("database", False, str(exc)))
        conn = None
    if conn is not None:
        with conn:
            conn.execute("SELECT 1")
            results.append(check("database", True, "archive database answers"))
            results += file_checks(night, conn)
            store(conn, night, results)
    for r in results:
        print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['check_name']:<16} {r['message']}")
    failed = [r["check_name"] for r in results if not r["ok"]]
    if failed:
        raise StepError(f"night {night}: checks failed: {', '.join(failed)}")
    return 0
