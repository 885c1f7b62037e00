"""`downlink archive --night YYYY-MM-DD`: move verified downloads into the archive.

staging/<night>/<file> goes to raw/<night>/<file>, read-only. An archived file is never replaced.
If the same name is already archived with the same content, the staged copy is dropped. If the
content differs, the staged copy is quarantined with the reason, and the archived file stays.
Exit codes: 0 done; 1 failure (reason on stderr); 2 bad usage.
"""
import os

from downlink import layout
from downlink.checksum import sha256_file
from downlink.quarantine import quarantine


def add_parser(sub):
    p = sub.add_parser("archive", help="move verified downloads into raw/<night>/", description=__doc__)
    p.add_argument("--night", required=True)
    return p


def archive_night(night):
    staging = layout.night_dir("staging", night)
    raw = layout.night_dir("raw", night, create=True)
    counts = {"archived": 0, "already": 0, "quarantined": 0}
    for name in layout.files_in(staging):
        src, dest = os.path.join(staging, name), os.path.join(raw, name)
        digest = sha256_file(src)
        try:
            os.link(src, dest)  # fails if dest exists: no window in which a file could be overwritten
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
        os.chmod(dest, 0o444)
        os.remove(src)
        counts["archived"] += 1
    total = len(layout.files_in(raw))
    print(f"night {night}: {counts['archived']} archived, {counts['already']} already archived, "
          f"{counts['quarantined']} quarantined; {total} files in {layout.relative(raw)}")
    return counts


def run(args):
    archive_night(layout.parse_night(args.night))
    return 0
