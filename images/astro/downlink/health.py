"""`downlink health`: the storage and data checks of the hourly `diagnostics` DAG.

Checks:
  disk_space  free space on each volume given with --volume NAME=PATH (default: the data volume
              at /data, and the archive's at /data/raw when it is mounted), and on the database's
              volume as the postgres service measures it (downlink_ops.data_volume_space(): steps
              never mount that volume), is at least
              --min-free-gb (DOWNLINK_MIN_FREE_GB, default 1 GB)
  database    the archive database answers
  freshness   a new frame was indexed within the last --max-age-hours (DOWNLINK_FRESHNESS_HOURS,
              default 36; 0 turns the check off). Before the first frame it passes with a note.
Each breach is printed as `BREACH <check>: <what> (threshold <setting>=<value>)`; the last line
(stderr) lists them all, which is what the failure mail quotes as the reason.
Exit codes: 0 all checks pass; 1 a threshold was crossed; 2 bad usage.
"""
import os
from datetime import datetime, timezone

from downlink import StepError, db, settings
from downlink.diagnostics import check, disk_check, space_check


def add_parser(sub):
    p = sub.add_parser("health", help="free space, database, data freshness (the hourly diagnostics)",
                       description=__doc__, formatter_class=_raw())
    p.add_argument("--volume", action="append", default=None, metavar="NAME=PATH",
                   help="a mounted volume to check (repeatable; default: data=/data, archive=/data/raw if mounted)")
    p.add_argument("--min-free-gb", type=float, default=settings.get("min_free_gb"),
                   help="free space each volume must keep (default: $DOWNLINK_MIN_FREE_GB or %(default)s)")
    p.add_argument("--max-age-hours", type=float, default=settings.get("freshness_hours"),
                   help="a new frame within this many hours, 0: off (default: $DOWNLINK_FRESHNESS_HOURS or %(default)s)")
    return p


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def number(x):
    """1000000.0 -> '1000000', 0.5 -> '0.5' (thresholds as a person wrote them)."""
    return f"{x:.0f}" if float(x).is_integer() else f"{x:g}"


def volumes(spec):
    if spec is None:
        data = settings.get("data_root")
        found = [("data", data)]
        if os.path.ismount(os.path.join(data, "raw")):
            found.append(("archive", os.path.join(data, "raw")))
        return found
    out = []
    for item in spec:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise StepError(f"--volume {item!r}: expected NAME=PATH")
        out.append((name, path))
    return out


def space_checks(vols, min_free_gb):
    results = []
    for name, path in vols:
        if not os.path.isdir(path):
            results.append(check(f"disk_space:{name}", False, f"{name} volume: {path} is not mounted"))
            continue
        results.append(named_space_result(disk_check(path, min_free_gb), name, min_free_gb))
    return results


def named_space_result(r, name, min_free_gb):
    r["check_name"] = f"disk_space:{name}"
    r["message"] = f"{name} volume: {r['message']}"
    if not r["ok"]:
        r["message"] += f" -- below DOWNLINK_MIN_FREE_GB={number(min_free_gb)}"
    return r


DATABASE_SPACE = "SELECT total_bytes, free_bytes, mount_point FROM downlink_ops.data_volume_space()"


def database_space_check(conn, min_free_gb):
    """Free space of the database's volume, measured by the postgres service itself (a superuser
    function the entrypoint creates; only the archive role may call it)."""
    import psycopg

    try:
        with conn.transaction():
            total, free, mount_point = conn.execute(DATABASE_SPACE).fetchone()
    except psycopg.Error as exc:
        return check("disk_space:database", False,
                     f"database volume: cannot be measured ({str(exc).strip()}); the postgres image "
                     f"creates downlink_ops.data_volume_space() when it starts: restart it with this release's image")
    return named_space_result(space_check(total, free, f"{mount_point} (in the postgres service)", min_free_gb),
                              "database", min_free_gb)


def freshness_check(conn, max_age_hours, now=None):
    if max_age_hours <= 0:
        return check("freshness", True, "freshness check off (DOWNLINK_FRESHNESS_HOURS=0)")
    newest = conn.execute("SELECT max(indexed_at) FROM observations").fetchone()[0]
    if newest is None:
        return check("freshness", True, "no frame indexed yet")
    age_h = ((now or datetime.now(timezone.utc)) - newest).total_seconds() / 3600
    ok = age_h <= max_age_hours
    return check("freshness", ok,
                 f"newest frame indexed {age_h:.1f} h ago ({newest:%Y-%m-%d %H:%M} UTC)"
                 + ("" if ok else f" -- older than DOWNLINK_FRESHNESS_HOURS={number(max_age_hours)}"),
                 age_hours=round(age_h, 2), threshold_hours=max_age_hours)


def run(args):
    results = space_checks(volumes(args.volume), args.min_free_gb)
    try:
        conn = db.connect()
    except StepError as exc:
        results.append(check("database", False, f"archive database unreachable: {exc}"))
        conn = None
    if conn is not None:
        with conn:
            conn.execute("SELECT 1")
            results.append(check("database", True, "archive database answers"))
            results.append(database_space_check(conn, args.min_free_gb))
            results.append(freshness_check(conn, args.max_age_hours))
    for r in results:
        print(f"{'ok    ' if r['ok'] else 'BREACH'} {r['check_name']:<20} {r['message']}")
    breaches = [r for r in results if not r["ok"]]
    if breaches:
        raise StepError("; ".join(f"{r['check_name']}: {r['message']}" for r in breaches))
    return 0

