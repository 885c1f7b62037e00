"""`downlink archive --night YYYY-MM-DD`: move verified downloads into the archive.

staging/<night>/<file> goes to raw/<night>/<file>, read-only. An archived file is never replaced.
If the same name is already archived with the same content, the staged copy is dropped. If the
content differs, the staged copy is quarantined with the reason, and the archived file stays.

raw/ is its own volume (read-only in every other step), so a file is copied in, not renamed: it
is written to a hidden temporary name, checked against the staged file's sha256, synced, then
linked to its final name (which fails if the name exists: no window in which a file could be
overwritten). The bytes are hashed as they are copied and must have the sha256 the download step
verified against the manifest (staging/<night>/.manifest.json); each archived file's digest is
recorded in raw/<night>/.sha256.json for the index step (checksum.py), so no step reads a file
again only to hash it. A copy cut short (a full volume, say) is deleted; the staged file stays for a rerun.
Exit codes: 0 done; 1 failure (reason on stderr); 2 bad usage.
"""
import json
import os

from downlink import StepError, layout
from downlink.checksum import copy_hashed, record, recorded, sha256_file
from downlink.quarantine import quarantine


def add_parser(sub):
    p = sub.add_parser("archive", help="move verified downloads into raw/<night>/", description=__doc__)
    p.add_argument("--night", required=True)
    return p


class Mismatch(StepError):
    """The staged bytes are not the ones the download step verified."""


def copy_into(src, dest, digest):
    """Copy src to dest (which must not exist) through a synced temporary file; FileExistsError
    if dest exists."""
    tmp = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.{os.getpid()}.tmp")
    if os.path.exists(dest):
        raise FileExistsError(dest)
    try:
        with open(tmp, "wb") as fout:
            copied = copy_hashed(src, fout)
            fout.flush()
            os.fsync(fout.fileno())
        if copied != digest:
            raise Mismatch(f"{layout.relative(dest)}: the staged file's sha256 is {copied}, not the verified "
                            f"{digest}; nothing archived")
        os.chmod(tmp, 0o444)
        os.link(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def verified_digests(staging):
    """{name: sha256} of the night's manifest as the download step saved it (the bytes it staged
    were checked against these)."""
    path = os.path.join(staging, ".manifest.json")
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return {e["name"]: e["sha256"].lower() for e in json.load(fh).get("files", [])}


def archive_night(night):
    staging = layout.night_dir("staging", night)
    raw = layout.night_dir("raw", night, create=True)
    counts = {"archived": 0, "already": 0, "quarantined": 0}
    verified = verified_digests(staging)
    held_digests = recorded(raw)
    archived = {}
    try:
        for name in layout.files_in(staging):
            archive_one(night, staging, raw, name, verified, held_digests, archived, counts)
    finally:
        if archived:
            record(raw, archived)
    total = len(layout.files_in(raw))
    print(f"night {night}: {counts['archived']} archived, {counts['already']} already archived, "
          f"{counts['quarantined']} quarantined; {total} files in {layout.relative(raw)}")
    return counts


def archive_one(night, staging, raw, name, verified, held_digests, archived, counts):
    """Archive staging/<night>/<name>; counts and the digests archived are updated."""
    src, dest = os.path.join(staging, name), os.path.join(raw, name)
    digest = verified.get(name) or sha256_file(src)
    try:
        copy_into(src, dest, digest)
        archived[name] = digest
    except Mismatch as exc:
        quarantine(night, name, "archive", str(exc), src=src)
        counts["quarantined"] += 1
        return
    except FileExistsError:
        held = held_digests.get(name) or sha256_file(dest)
        if held == digest:
            os.remove(src)
            counts["already"] += 1
        else:
            quarantine(night, name, "archive",
                       f"a different file of this name is already archived (sha256 {held}); not overwritten",
                       src=src, sha256=digest)
            counts["quarantined"] += 1
        return
    os.remove(src)
    counts["archived"] += 1


def run(args):
    archive_night(layout.parse_night(args.night))
    return 0
