"""`downlink index --night YYYY-MM-DD`: every archived file's headers into the archive database.

One row per file of raw/<night>/ in `observations` (see migrations/0002 and 0003, and
docs/observation-index.md), bulk-loaded with COPY into a temporary table and upserted on the
file's path, so a rerun adds no duplicates. Files are described by a pool of processes, one per
CPU (fitsmeta.describe reads each file's headers once, and the header JSON is serialised there
too), and their rows are streamed into COPY as they come; the sha256 is the one the archive step
recorded (checksum.py), computed (in the pool) only for files it did not record. A file that cannot be read, for
whatever reason, is recorded in `quarantine` (stage index) with that reason and the rest go on.
The night's quarantine records (reason files) are copied into the `quarantine` table here too.
Exit codes: 0 done; 1 failure (reason on stderr, e.g. database unreachable); 2 bad usage.
"""
import json
import multiprocessing
import os

from downlink import StepError, db, layout, runinfo
from downlink.checksum import recorded, sha256_file
from downlink.fitsmeta import describe
from downlink.quarantine import quarantine, records, release

COLUMNS = ("path", "filename", "night", "sha256", "size_bytes", "instrument", "telescope", "imagetyp",
           "imagetyp_raw", "object", "filter", "exptime", "date_obs", "date_precision", "date_end", "mjd", "ra", "dec",
           "coord_source", "native_frame", "s_region", "s_fov", "airmass", "naxis1", "naxis2", "n_ext", "header",
           "notes", "run_id")
# Below this many files a pool costs more (starting processes) than it saves.
POOL_MIN_FILES = 64
# pruned_at: when housekeeping deleted the kept bytes (the record and the row stay).
QUARANTINE_COLUMNS = ("night", "filename", "stage", "reason", "sha256", "path", "run_id", "pruned_at")


def add_parser(sub):
    p = sub.add_parser("index", help="index the night's archived files in Postgres", description=__doc__)
    p.add_argument("--night", required=True)
    return p


def describe_one(path):
    """(path, row or None, reason or None): one file's description, never an exception."""
    try:
        return path, describe(path), None
    except StepError as exc:
        return path, None, str(exc).replace(path, os.path.basename(path))
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the night
        return path, None, f"{os.path.basename(path)}: cannot be described: {type(exc).__name__}: {exc}"


def describe_for_load(job):
    """(path, row or None, reason or None, sha256) for job = (path, the sha256 the archive step
    recorded or None): describe_one, the header JSON as text as COPY takes it, and the sha256
    computed when none was recorded. This is the pool's work: a string crosses back to the step
    far cheaper than the nested cards, and no file is read in the step's own process."""
    path, digest = job
    path, meta, reason = describe_one(path)
    if meta is not None:
        meta["header"] = json.dumps(meta["header"])
    return path, meta, reason, digest or sha256_file(path)


def described(jobs):
    """describe_for_load of every (path, recorded sha256), in order, as they are done: over a
    process pool when there are many."""
    workers = len(os.sched_getaffinity(0))
    if workers < 2 or len(jobs) < POOL_MIN_FILES:
        yield from map(describe_for_load, jobs)
        return
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        yield from pool.imap(describe_for_load, jobs, chunksize=max(1, min(64, len(jobs) // (8 * workers))))
    finally:
        pool.close()
        pool.join()


def describe_files(night, paths):
    """(rows, rejected): one row dict per readable file; unreadable ones are quarantined."""
    rejected = []
    rows = list(iter_rows(night, paths, rejected))
    return rows, len(rejected)


def iter_rows(night, paths, rejected):
    """One row dict per readable file, as each is described; unreadable ones are quarantined and
    their names appended to `rejected`."""
    digests = recorded(os.path.dirname(paths[0])) if paths else {}
    refused_before = {r["filename"] for r in records(night) if r.get("stage") == "index"}
    run_id = runinfo.run_id()
    for path, meta, reason, digest in described([(p, digests.get(os.path.basename(p))) for p in paths]):
        name = os.path.basename(path)
        if meta is None:
            # The archived bytes stay where they are (the archive is never rewritten); the reason is recorded.
            quarantine(night, name, "index", reason, sha256=digest)
            rejected.append(name)
            continue
        if name in refused_before:  # readable now (a newer indexer): the old refusal no longer holds
            release(night, name, "index")
        yield {**meta, "path": layout.relative(path), "filename": name, "night": night,
               "sha256": digest, "size_bytes": os.path.getsize(path), "run_id": run_id}


def upsert_observations(conn, rows):
    """COPY the rows (any iterable: they are loaded as they come) and upsert them; their number."""
    cols = ", ".join(COLUMNS)
    conn.execute("CREATE TEMP TABLE obs_load (LIKE observations INCLUDING DEFAULTS) ON COMMIT DROP")
    count = 0
    with conn.cursor().copy(f"COPY obs_load ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in COLUMNS])
            count += 1
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "path")
    conn.execute(f"INSERT INTO observations ({cols}) SELECT {cols} FROM obs_load "
                 f"ON CONFLICT (path) DO UPDATE SET {updates}, indexed_at = now()")
    return count


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
    rejected = []
    with db.connect() as conn:
        with conn.transaction():
            indexed = upsert_observations(conn, iter_rows(night, [os.path.join(raw, n) for n in layout.files_in(raw)], rejected))
            quarantined = sync_quarantine(conn, night)
        total = conn.execute("SELECT count(*) FROM observations WHERE night = %s", (night,)).fetchone()[0]
    print(f"night {night}: {indexed} files indexed, {len(rejected)} unreadable; "
          f"{total} observations and {quarantined} quarantine records for the night")
    return {"indexed": indexed, "rejected": len(rejected), "total": total}


def run(args):
    index_night(layout.parse_night(args.night))
    return 0
