"""`downlink archive --night YYYY-MM-DD`: move verified downloads into the archive.

staging/<night>/<file> goes to raw/<night>/<file>, read-only. An archived file is never replaced.
If the same name is already archived with the same content, the staged copy is dropped. If the
content differs, the staged copy is quarantined with the reason, and the archived file stays.

raw/ is its own volume (read-only in every other step), so a file is copied in, not renamed: it
is written to a hidden temporary name, checked against the staged file's sha256, synced, then
linked to its final name (which fails if the name exists: no window in which a file could be
overwritten). A staged file that is still the one the download step verified (same inode, size and
mtime as it recorded in staging/<night>/.staged.json) is copied by the kernel (copy_file_range:
its bytes never pass through Python, and nothing reads them again only to hash them); any other
staged file is hashed as it is copied and must have the sha256 the download step verified against
the manifest (staging/<night>/.manifest.json). Each archived file's digest is recorded in
raw/<night>/.sha256.json for the index step (checksum.py). A copy cut short (a full volume, say)
is deleted; the staged file stays for a rerun.
Exit codes: 0 done; 1 failure (reason on stderr); 2 bad usage.
"""
import concurrent.futures
import errno
import json
import os

from downlink import StepError, layout
from downlink.checksum import copy_hashed, forget_staged, record, recorded, sha256_file, staged_digest, staged_records
from downlink.quarantine import quarantine


def add_parser(sub):
    p = sub.add_parser("archive", help="move verified downloads into raw/<night>/", description=__doc__)
    p.add_argument("--night", required=True)
    return p


class Mismatch(StepError):
    """The staged bytes are not the ones the download step verified."""


# Errors meaning "this kernel or filesystem pair cannot copy_file_range": copy in Python instead.
NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM}


def kernel_copy(src, fout):
    """Copy the file src into the open binary file fout inside the kernel; False (fout untouched)
    if the kernel or the filesystems cannot."""
    with open(src, "rb") as fin:
        left, offset = os.fstat(fin.fileno()).st_size, 0
        while left > 0:
            try:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), min(left, 1 << 30), offset, offset)
            except OSError as exc:
                if offset == 0 and exc.errno in NO_KERNEL_COPY:
                    return False
                raise
            if n == 0:  # the file shrank under us: let the hashed copy find out
                raise Mismatch(f"{layout.relative(src)}: changed while it was archived; nothing archived")
            offset, left = offset + n, left - n
    return True


def copy_into(src, dest, digest, trusted=False):
    """Copy src to dest (which must not exist) through a synced temporary file; FileExistsError
    if dest exists. trusted: src is the file the download step verified to have `digest`, so the
    kernel may copy it unread."""
    tmp = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.{os.getpid()}.tmp")
    if os.path.exists(dest):
        raise FileExistsError(dest)
    try:
        with open(tmp, "wb") as fout:
            copied = digest if trusted and kernel_copy(src, fout) else copy_hashed(src, fout)
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


# Files copied at once: each copy ends with an fsync, and the disk completes several flushes in
# about the time of one (measured here: 4 at once took 55 % of the time of one after another).
COPIERS = 4


def archive_night(night):
    staging = layout.night_dir("staging", night)
    raw = layout.night_dir("raw", night, create=True)
    counts = {"archived": 0, "already": 0, "quarantined": 0}
    verified = verified_digests(staging)
    held_digests = recorded(raw)
    staged = staged_records(staging)
    archived = {}
    failure = None
    try:
        with concurrent.futures.ThreadPoolExecutor(COPIERS) as pool:
            jobs = [(name, pool.submit(archive_one, night, staging, raw, name, verified, held_digests, staged))
                    for name in layout.files_in(staging)]
            for name, job in jobs:  # every copy ends (or fails) before the record is written
                try:
                    outcome, digest = job.result()
                except Exception as exc:  # noqa: BLE001 - raised below, after the others are recorded
                    failure = failure or exc
                    continue
                counts[outcome] += 1
                if outcome == "archived":
                    archived[name] = digest
    finally:
        if archived:
            record(raw, archived)
        forget_staged(staging)
    if failure is not None:
        raise failure
    total = len(layout.files_in(raw))
    print(f"night {night}: {counts['archived']} archived, {counts['already']} already archived, "
          f"{counts['quarantined']} quarantined; {total} files in {layout.relative(raw)}")
    return counts


def archive_one(night, staging, raw, name, verified, held_digests, staged):
    """Archive staging/<night>/<name>: ("archived" | "already" | "quarantined", its sha256)."""
    src, dest = os.path.join(staging, name), os.path.join(raw, name)
    trusted = staged_digest(staging, name, staged)
    if trusted and verified.get(name, trusted) != trusted:
        trusted = None  # a newer manifest names other bytes: hash these ones
    digest = verified.get(name) or trusted or sha256_file(src)
    try:
        copy_into(src, dest, digest, trusted=trusted == digest)
    except Mismatch as exc:
        quarantine(night, name, "archive", str(exc), src=src)
        return "quarantined", digest
    except FileExistsError:
        held = held_digests.get(name) or sha256_file(dest)
        if held == digest:
            os.remove(src)
            return "already", digest
        quarantine(night, name, "archive",
                   f"a different file of this name is already archived (sha256 {held}); not overwritten",
                   src=src, sha256=digest)
        return "quarantined", digest
    os.remove(src)
    return "archived", digest


def run(args):
    archive_night(layout.parse_night(args.night))
    return 0
