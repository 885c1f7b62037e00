"""Quarantine: rejected files are kept, never deleted, under quarantine/<night>/, each with a
<name>.<stage>.reason.json saying why. The reason files are the record. The index step copies them
into the database table `quarantine`, so a database outage during download loses no reason."""
import datetime
import hashlib
import json
import os
import sys

import downlink_data

from downlink import StepError, layout, runinfo
from downlink.checksum import sha256_file
from downlink.outputs import write_json

SUFFIX = downlink_data.RECORD_SUFFIX


def disk_name(name):
    """The name to keep a file under: itself, or a digest when it could escape the folder."""
    try:
        return layout.safe_name(name)
    except StepError:
        return "unsafe-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def record_name(name, stage):
    return f"{disk_name(name)}.{stage}{SUFFIX}"


def keep_bytes(src, qdir, name, digest):
    """Move src into the quarantine folder. Earlier quarantined bytes are never overwritten, and
    identical bytes are kept once."""
    dest = os.path.join(qdir, name)
    n = 0
    while os.path.exists(dest):
        if sha256_file(dest) == digest:
            os.remove(src)
            return dest
        n += 1
        dest = os.path.join(qdir, f"{name}.{n}")
    os.replace(src, dest)
    return dest


def quarantine(night, name, stage, reason, src=None, sha256=None):
    """Record that `name` was rejected at `stage`, moving its bytes (src) into quarantine.
    sha256 is that of the rejected bytes (computed from src when not given)."""
    qdir = layout.night_dir("quarantine", night, create=True)
    kept = None
    if src is not None and os.path.exists(src):
        sha256 = sha256 or sha256_file(src)
        kept = layout.relative(keep_bytes(src, qdir, disk_name(name), sha256))
    record = {
        "night": str(night), "filename": name, "stage": stage, "reason": reason, "sha256": sha256,
        "path": kept, "run_id": runinfo.run_id(),
        "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    write_json(os.path.join(qdir, record_name(name, stage)), record)
    print(f"quarantined {name!r} at {stage}: {reason}", file=sys.stderr)
    return record


def release(night, name, stage):
    """Forget an earlier rejection of `name` at `stage` (it has since arrived intact)."""
    path = os.path.join(layout.night_dir("quarantine", night), record_name(name, stage))
    if os.path.exists(path):
        os.remove(path)


def find(night, name, stage):
    """The reason record of `name` at `stage`, or None."""
    path = os.path.join(layout.night_dir("quarantine", night), record_name(name, stage))
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def records(night):
    """Every reason record of the night."""
    return [downlink_data.read_record(path) for path in downlink_data.record_paths(layout.night_dir("quarantine", night))]
