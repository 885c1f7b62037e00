"""The ingest benchmark's in-container side (runs in the astro image, /data = the bench data).
Times, for each night given, the per-file loops that are not the step itself:
  headers   read every HDU's header with astropy, nothing else (the upper bound, no database)
  describe  the index step's own per-file work (sha256 + fitsmeta.describe), no database
  naive     the same per-file work, then one INSERT and one COMMIT per file
  step      Downlink's index step itself, `downlink index --night NIGHT`, as a child process (its
            Python start, imports and database connection included; the container is this one)
  truncate  empty observations and quarantine (before every (a) and (b), so each is a first ingest)
Usage: python3 ingest_inner.py MODE:NIGHT [MODE:NIGHT ...]; prints one JSON line per item.
"""
import json
import os
import re
import subprocess
import sys
import time

from astropy.io import fits
from psycopg.types.json import Jsonb

from downlink import db, layout
from downlink.checksum import sha256_file
from downlink.fitsmeta import describe
from downlink.index import COLUMNS


def paths(night):
    raw = layout.night_dir("raw", night)
    return [os.path.join(raw, n) for n in layout.files_in(raw)]


def headers(night, files):
    for path in files:
        with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
            [hdu.header for hdu in hdul]


def describe_only(night, files):
    for path in files:
        sha256_file(path)
        describe(path)


def naive(night, files):
    sql = f"INSERT INTO observations ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    with db.connect() as conn:
        for path in files:
            meta = describe(path)
            meta["header"] = Jsonb(meta["header"])
            row = {**meta, "path": layout.relative(path), "filename": os.path.basename(path), "night": night,
                   "sha256": sha256_file(path), "size_bytes": os.path.getsize(path), "run_id": "bench-naive"}
            conn.execute(sql, [row[c] for c in COLUMNS])
            conn.commit()


def step(night, files):
    out = subprocess.run(["downlink", "index", "--night", night], check=True, capture_output=True, text=True).stdout
    m = re.search(r"(\d+) files indexed, (\d+) unreadable; (\d+) observations", out)
    if not m or [int(g) for g in m.groups()] != [len(files), 0, len(files)]:
        raise SystemExit(f"ingest: the index step did not index {len(files)} files: {out}")


def truncate(night, files):
    with db.connect() as conn:
        conn.execute("TRUNCATE observations, quarantine CASCADE")


MODES = {"headers": headers, "describe": describe_only, "naive": naive, "step": step, "truncate": truncate}

if __name__ == "__main__":
    for item in sys.argv[1:]:
        mode, night = item.split(":")
        files = paths(night)
        start = time.perf_counter()
        MODES[mode](night, files)
        print(json.dumps({"mode": mode, "night": night, "n": len(files), "seconds": time.perf_counter() - start}),
              flush=True)
