"""`downlink describe FILE...`: what the index step would store for each file, as JSON, or why
the file would be quarantined (at download: not complete, readable FITS; at index: its headers
cannot be described). Nothing is written anywhere; no database is needed.

Output: a JSON list, one object per file: {"file", "indexed": true, "row": {column: value},
"notes": [...]} or {"file", "indexed": false, "stage": "download"|"index", "reason"}. "row" holds the
columns of `observations` (docs/observation-index.md) but path and night, which depend on where the
file is archived; "header" is the header JSON exactly as stored.
Exit codes: 0 every file would be indexed; 1 some would be quarantined; 2 bad usage.
"""
import datetime
import json
import os
import sys


def add_parser(sub):
    import argparse

    p = sub.add_parser("describe", help="print, as JSON, what the indexer will store for FILEs (or why not)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE")
    return p


def plain(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def describe_path(path):
    from downlink import StepError
    from downlink.checksum import sha256_file
    from downlink.fitsmeta import verify_fits

    shown = {"file": path}
    if not os.path.isfile(path):
        return {**shown, "indexed": False, "stage": "download", "reason": f"{path}: no such file"}
    name = os.path.basename(path)
    try:
        verify_fits(path, os.path.getsize(path))
    except StepError as exc:
        return {**shown, "indexed": False, "stage": "download", "reason": str(exc)}
    from downlink.index import describe_one

    _, meta, reason = describe_one(path)
    if meta is None:
        return {**shown, "indexed": False, "stage": "index", "reason": reason}
    row = {"filename": name, "sha256": sha256_file(path), "size_bytes": os.path.getsize(path), **meta}
    notes = row.pop("notes")
    return {**shown, "indexed": True, "row": row, "notes": notes}


def run(args):
    results = [describe_path(path) for path in args.files]
    json.dump(results, sys.stdout, indent=2, default=plain, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0 if all(r["indexed"] for r in results) else 1
