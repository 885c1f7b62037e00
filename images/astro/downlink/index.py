"""`downlink index --night YYYY-MM-DD`: every archived file's headers into the archive database.

One row per file of raw/<night>/ in `observations` (see migrations/0002), bulk-loaded with COPY
into a temporary table and upserted on the file's path, so a rerun adds no duplicates. A file
whose headers cannot be read is recorded in `quarantine` (stage index) and the rest go on.
The night's quarantine records (reason files) are copied into the `quarantine` table here too.
Exit codes: 0 done; 1 failure (reason on stderr, e.g. database unreachable); 2 bad usage.
"""
import os

from psycopg.types.json import Jsonb

from downlink import StepError, db, layout, runinfo
from downlink.checksum import sha256_file
from downlink.fitsmeta import describe
from downlink.quarantine import quarantine, records

COLUMNS = ("path", "filename", "night", "sha256", "size_bytes", "instrument", "telescope", "imagetyp",
           "imagetyp_raw", "object", "filter", "exptime", "date_obs", "mjd", "ra", "dec", "coord_source",
           "airmass", "naxis1", "naxis2", "n_ext", "header", "notes", "run_id")
QUARANTINE_COLUMNS = ("night", "filename", "stage", "reason", "sha256", "path", "run_id")


def add_parser(sub):
    p = sub.add_parser("index", help="index the night's archived files in Postgres", description=__doc__)
    p.add_argument("--night", required=True)
    return p


def describe_files(night, paths):
    """(rows, rejected): one row dict per readable file; unreadable ones are quarantined."""
    rows, rejected = [], 0
    for path in paths:
        name = os.path.basename(path)
        digest = sha256_file(path)
        try:
            meta = describe(path)
        except StepError as exc:
            # The archived bytes stay where they are (the archive is never rewritten); the reason is recorded.
            quarantine(night, name, "index", str(exc).replace(path, name), sha256=digest)
            rejected += 1
            continue
        meta["header"] = Jsonb(meta["header"])
        rows.append({**meta, "path": layout.relative(path), "filename": name, "night": night,
                     "sha256": digest, "size_bytes": os.path.getsize(path), "run_id": runinfo.run_id()})
    return rows, rejected


def upsert_observations(conn, rows):
    cols = ", ".join(COLUMNS)
    conn.execute(f"CREATE TEMP TABLE obs_load (LIKE observations INCLUDING DEFAULTS) ON COMMIT DROP")
    with conn.cursor().copy(f"COPY obs_load ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in COLUMNS])
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "path")
    conn.execute(f"INSERT INTO observations ({cols}) SELECT {cols} FROM obs_load "
                 f"ON CONFLICT (path) DO UPDATE SET {updates}, indexed_at = now()")


def sync_quarantine(conn, night):
    """The table mirrors the night's reason files: upsert each, drop rows whose file is gone."""
    found = records(night)
    conn.execute("CREATE TEMP TABLE q_load (LIKE quarantine INCLUDING DEFAULTS) ON COMMIT DROP")
    cols = ", ".join(QUARANTINE_COLUMNS)
    with conn.cursor().copy(f"COPY q_load ({cols}, recorded_at) FROM STDIN") as copy:
        for rec in found:
            copy.write_row([rec.get(c) for c in QUARANTINE_COLUMNS] + [rec.get("recorded_at")])
    conn.execute("DELETE FROM quarantine q WHERE q.night = %s AND NOT EXISTS "
                 "(SELECT 1 FROM q_load l WHERE l.filename = q.filename AND l.stage = q.stage)", (night,))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in QUARANTINE_COLUMNS[3:] + ("recorded_at",))
    conn.execute(f"INSERT INTO quarantine ({cols}, recorded_at) SELECT {cols}, recorded_at FROM q_load "
                 f"ON CONFLICT (night, filename, stage) DO UPDATE SET {updates}")
    return len(found)


def index_night(night):
    raw = layout.night_dir("raw", night)
    rows, rejected = describe_files(night, [os.path.join(raw, n) for n in layout.files_in(raw)])
    with db.connect() as conn:
        with conn.transaction():
            upsert_observations(conn, rows)
            quarantined = sync_quarantine(conn, night)
        total = conn.execute("SELECT count(*) FROM observations WHERE night = %s", (night,)).fetchone()[0]
    print(f"night {night}: {len(rows)} files indexed, {rejected} unreadable; "
          f"{total} observations and {quarantined} quarantine records for the night")
    return {"indexed": len(rows), "rejected": rejected, "total": total}


def run(args):
    index_night(layout.parse_night(args.night))
    return 0
