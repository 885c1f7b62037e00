"""`downlink iraf-stats --night YYYY-MM-DD`: IRAF imstatistics (via PyRAF) of every reduced frame.

The chain's IRAF step: it proves IRAF tasks run unattended inside the pipeline, and it records
each reduced frame's statistics in the table iraf_stats (one row per frame, upserted).
Exit codes: 0 done; 1 failure (reason on stderr); 2 bad usage.
"""
import os

from downlink import db, layout, runinfo
from downlink.iraf_imstat import imstatistics

COLUMNS = ("npix", "mean", "midpt", "mode", "stddev", "min", "max", "iraf_version")


def add_parser(sub):
    p = sub.add_parser("iraf-stats", help="IRAF imstatistics of the night's reduced frames", description=__doc__)
    p.add_argument("--night", required=True)
    return p


def run(args):
    night = layout.parse_night(args.night)
    cols = ", ".join(COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS + ("run_id",))
    with db.connect() as conn:
        frames = conn.execute("SELECT reduced_id, path FROM reduced_frames WHERE night = %s ORDER BY path",
                              (night,)).fetchall()
        for reduced_id, path in frames:
            # IRAF's FITS kernel takes a plain path; [0] names the primary HDU explicitly.
            stats = imstatistics(os.path.join(layout.data_root(), path) + "[0]")
            conn.execute(
                f"INSERT INTO iraf_stats (reduced_id, {cols}, run_id) VALUES (%s, {', '.join(['%s'] * len(COLUMNS))}, %s)"
                f" ON CONFLICT (reduced_id) DO UPDATE SET {updates}, measured_at = now()",
                (reduced_id, *(stats[c] for c in COLUMNS), runinfo.run_id()))
            print(f"  {os.path.basename(path)}: npix {stats['npix']} mean {stats['mean']} stddev {stats['stddev']}")
    print(f"night {night}: IRAF imstatistics of {len(frames)} reduced frames stored")
    return 0
