"""`downlink store-imstat`: store iraf-imstat's JSON in the archive table env_check_imstat.

Idempotent: storing the same run and image again updates the one row.
"""
import datetime
import json
import os

from downlink import StepError, db

COLUMNS = ("npix", "mean", "midpt", "mode", "stddev", "skew", "kurtosis", "min", "max", "iraf_version")


def add_parser(sub):
    p = sub.add_parser("store-imstat", help="store imstatistics results in Postgres", description=__doc__)
    p.add_argument("--in", dest="infile", required=True, metavar="FILE", help="JSON written by iraf-imstat --out")
    p.add_argument("--run-id", required=True, help="the Airflow DAG run id (rows are keyed by it)")
    return p


def load(path):
    try:
        with open(path) as fh:
            stats = json.load(fh)
    except (OSError, ValueError) as exc:
        raise StepError(f"{path}: cannot read imstatistics results: {exc}") from exc
    missing = [c for c in ("image",) + COLUMNS if c not in stats]
    if missing:
        raise StepError(f"{path}: missing fields {missing}")
    return stats


def run(args):
    stats = load(args.infile)
    measured = datetime.datetime.fromtimestamp(os.path.getmtime(args.infile), datetime.timezone.utc)
    cols = ", ".join(COLUMNS)
    placeholders = ", ".join(["%s"] * (len(COLUMNS) + 3))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS + ("measured_at",))
    with db.connect() as conn:
        conn.execute(
            f"INSERT INTO env_check_imstat (run_id, image, {cols}, measured_at) VALUES ({placeholders}) "
            f"ON CONFLICT (run_id, image) DO UPDATE SET {updates}, stored_at = now()",
            (args.run_id, stats["image"], *(stats[c] for c in COLUMNS), measured),
        )
    print(f"stored imstatistics of {stats['image']} for run {args.run_id}")
    return 0
