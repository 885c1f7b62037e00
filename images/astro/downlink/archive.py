"""`downlink archive --night YYYY-MM-DD`: move verified downloads into the archive.

staging/<night>/<file> goes to raw/<night>/<file>, read-only. An archived file is never replaced.
If the same name is already archived with the same content, the staged copy is dropped. If the
content differs, the staged copy is quarantined with the reason, and the archived file stays.

raw/ is its own volume (read-only in every other step), so a file is copied in, not renamed: it
is written to a hidden temporary name, checked against the staged file's sha256, synced, then
linked to its final name (which fails if the name exists: no window in which a file could be
overwritten). A copy cut short (a full volume, say) is deleted; the staged file stays for a rerun.
Exit codes: 0 done; 1 failure (reason on stderr); 2 bad usage.
"""
import os
import shutil

from downlink import StepError, layout
from downlink.checksum import sha256_file
from downlink.quarantine import quarantine


def add_parser(sub):
    p = sub.add_parser("archive", help="move verified downloads into raw/<night>/", description=__doc__)
    p.add_argument("--night", required=True)
    return p


def copy_into(src, dest, digest):
    """Copy src to dest (which must not exist) through a synced temporary file; FileExistsError
    if dest exists."""
    tmp = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.{os.getpid()}.tmp")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        if sha256_file(tmp) != digest:
            raise StepError(f"{layout.relative(dest)}: the copy differs from the staged file; nothing archived")
        os.chmod(tmp, 0o444)
        os.link(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def archive_night(night):
    staging = layout.night_dir("staging", night)
    raw = layout.night_dir("raw", night, create=True)
    counts = {"archived": 0, "already": 0, "quarantined": 0}
    for name in layout.files_in(staging):
        src, dest = os.path.join(staging, name), os.path.join(raw, name)
        digest = sha256_file(src)
        try:
            copy_into(src, dest, digest)
        except FileExistsError:
            held = sha256_file(dest)
            if held == digest:
                os.remove(src)
                counts["already"] += 1
            else:
                quarantine(night, name, "archive",
                           f"a different file of this name is already archived (sha256 {held}); not overwritten",
                           src=src, sha256=digest)
                counts["quarantined"] += 1
            continue
        os.remove(src)
        counts["archived"] += 1
    total = len(layout.files_in(raw))
    print(f"night {night}: {counts['archived']} archived, {counts['already']} already archived, "
          f"{counts['quarantined']} quarantined; {total} files in {layout.relative(raw)}")
    return counts


def run(args):
    archive_night(layout.parse_night(args.night))
    return 0
