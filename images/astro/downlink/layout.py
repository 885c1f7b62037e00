"""Where things live on the data volume (DOWNLINK_DATA, /data in every step container).

    staging/<night>/        downloads in progress and verified downloads awaiting the archive step
    raw/<night>/            the archive: verified raw files, read-only, never overwritten
    quarantine/<night>/     rejected files, each with <name>.reason.json saying why
    masters/<night>/        master calibration frames made from that night
    reduced/<night>/        reduced science frames
    catalogs/<night>/       source catalogues (SExtractor)
    reports/<night>/        the nightly report (index.html and its PNG images)
    products/<night>/<script>/  outputs of the team's scripts
    work/<dag>/<run>/       scratch space of one DAG run
    housekeeping/<date>.json  what housekeeping freed (it deletes only in work/, staging/, quarantine/)

A night is named by the date on which it began (YYYY-MM-DD).
"""
import datetime
import os
import re

import downlink_data

from downlink import StepError, settings

NIGHT_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
AREAS = downlink_data.AREAS  # the data-volume contract, shared with the arrivals trigger


def data_root():
    return settings.get("data_root")


def parse_night(text):
    """'2026-11-24' -> date; anything else is a clear error."""
    if not NIGHT_FORMAT.match(text or ""):
        raise StepError(f"night {text!r} is not a date of the form YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise StepError(f"night {text!r} is not a valid date: {exc}") from exc


def night_dir(area, night, root=None, create=False):
    path = downlink_data.night_dir(root or data_root(), area, night)
    if create:
        os.makedirs(path, exist_ok=True)
    return path


def space_report(root=None):
    """'data volume /data: 0.1 MB free of 1024.0 MB; archive volume /data/raw: …' for error messages."""
    root = root or data_root()
    parts = []
    for name, path in (("data volume", root), ("archive volume", os.path.join(root, "raw"))):
        if name == "archive volume" and not os.path.ismount(path):
            continue  # raw/ is a folder of the data volume here
        try:
            usage = os.statvfs(path)
        except OSError:
            continue
        free, total = usage.f_bavail * usage.f_frsize / 2**20, usage.f_blocks * usage.f_frsize / 2**20
        parts.append(f"{name} {path}: {free:.1f} MB free of {total:.1f} MB")
    return "; ".join(parts)


def relative(path, root=None):
    """A path as stored in the database: relative to the data root."""
    return os.path.relpath(path, root or data_root())


def files_in(folder):
    """Names of the data files in a folder, sorted: regular files, no dotfiles, no partial
    downloads (*.part). An absent folder has none."""
    return downlink_data.files_in(folder)


def safe_name(name):
    """Reject file names that could escape their folder (from a manifest, say)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise StepError(f"unsafe file name {name!r}")
    return name
