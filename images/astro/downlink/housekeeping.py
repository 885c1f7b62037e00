"""`downlink housekeeping [--dry-run]`: prune what the data volume no longer needs.

  work/<dag>/<run>/    scratch of finished runs: nothing in it changed for DOWNLINK_KEEP_SCRATCH_DAYS
                       (default 14) and the run is not one the DAG says is still active (--active-runs)
  staging/<night>/     staged files older than DOWNLINK_KEEP_STAGING_DAYS (default 30) that are archived:
                       the same name and sha256 in raw/<night>/.sha256.json. A staged file that is not
                       archived (or differs from the archived one) is never deleted.
  quarantine/<night>/  quarantined bytes older than DOWNLINK_KEEP_QUARANTINE_DAYS (default 90); the reason
                       record (.reason.json) is kept and gains `pruned_at`, and so does the database row

It deletes only inside those three areas (ALLOWED_AREAS): every path is checked against them
before it is removed, no symbolic link is followed (a link is removed as a link, never its
target), and raw/, reduced/, masters/ and the database's observations are never touched. raw/ is
only read (mounted read-only), to know what is archived.

The report (files and bytes freed per area; with --dry-run, what would be, and nothing is changed)
is printed as JSON and written to housekeeping/<UTC date>.json on the data volume.
Exit codes: 0 done; 1 failure (reason on stderr); 2 bad usage.
"""
import argparse
import datetime
import json
import os
import stat
import sys

import downlink_data

from downlink import StepError, layout, settings
from downlink.checksum import recorded, sha256_file
from downlink.outputs import write_json

# The only areas of the data volume housekeeping may delete in. Everything else (raw/, reduced/,
# masters/, catalogs/, reports/, products/) is kept for ever.
ALLOWED_AREAS = ("work", "staging", "quarantine")
REPORTS = "housekeeping"  # <root>/housekeeping/<date>.json
DAY = 86400


def add_parser(sub):
    p = sub.add_parser("housekeeping", help="prune old scratch, archived staging leftovers and quarantined bytes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # A value may follow (the DAG passes --dry-run=True or =False from its param).
    p.add_argument("--dry-run", nargs="?", const=True, default=False, type=yes_no, metavar="BOOL",
                   help="list what would be deleted; change nothing")
    p.add_argument("--keep-scratch-days", type=float, default=settings.get("keep_scratch_days"),
                   help="work/<dag>/<run>/ kept this long after its last change (default: $DOWNLINK_KEEP_SCRATCH_DAYS or %(default)s)")
    p.add_argument("--keep-staging-days", type=float, default=settings.get("keep_staging_days"),
                   help="archived staged files kept this long (default: $DOWNLINK_KEEP_STAGING_DAYS or %(default)s)")
    p.add_argument("--keep-quarantine-days", type=float, default=settings.get("keep_quarantine_days"),
                   help="quarantined bytes kept this long (default: $DOWNLINK_KEEP_QUARANTINE_DAYS or %(default)s)")
    p.add_argument("--active-runs", type=run_list, default=[], metavar="JSON",
                   help='runs still queued or running, whose scratch is kept whatever its age: ["dag/run", ...]')
    return p


def yes_no(text):
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def run_list(text):
    try:
        runs = json.loads(text or "[]")
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a JSON list of "dag/run" strings, got {text!r}') from None
    runs = [] if runs is None else runs
    if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
        raise argparse.ArgumentTypeError(f'expected a JSON list of "dag/run" strings, got {text!r}')
    return runs


# ----------------------------------------------------------------------------------------------
# The guard: every deletion goes through here.
# ----------------------------------------------------------------------------------------------

def check_deletable(root, path):
    """Refuse (StepError) any path that is not strictly inside an allowed area of the data root,
    or that reaches it through a symbolic link (a link could lead out of the area)."""
    root = os.path.abspath(root)
    path = os.path.abspath(path)
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep)
    if rel.startswith("..") or len(parts) < 2 or parts[0] not in ALLOWED_AREAS:
        raise StepError(f"housekeeping refuses to delete {path}: not inside {', '.join(ALLOWED_AREAS)} of {root}")
    # Every folder between the root and the path must be a real folder, not a link.
    here = root
    for part in parts[:-1]:
        here = os.path.join(here, part)
        if os.path.islink(here) or not os.path.isdir(here):
            raise StepError(f"housekeeping refuses to delete {path}: {here} is not a plain folder (a symbolic link?)")
    real_area = os.path.realpath(os.path.join(root, parts[0]))
    if os.path.commonpath([real_area, os.path.realpath(os.path.dirname(path))]) != real_area:
        raise StepError(f"housekeeping refuses to delete {path}: it resolves outside {real_area}")
    return path


class Pruner:
    """Deletes (or, in a dry run, only lists) checked paths and counts what is freed per area."""

    def __init__(self, root, dry_run):
        self.root, self.dry_run = root, dry_run
        self.areas = {area: {"files": 0, "bytes": 0, "items": []} for area in ALLOWED_AREAS}

    def _count(self, area, item, files, size):
        entry = self.areas[area]
        entry["files"] += files
        entry["bytes"] += size
        entry["items"].append({"path": os.path.relpath(item, self.root), "files": files, "bytes": size})

    def remove_file(self, area, path):
        check_deletable(self.root, path)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            raise StepError(f"housekeeping: {path} is a folder, expected a file")
        if not self.dry_run:
            os.unlink(path)  # a link is removed itself, never its target
        self._count(area, path, 1, st.st_size if stat.S_ISREG(st.st_mode) else 0)
        return st.st_size

    def remove_tree(self, area, path):
        """A folder and everything in it, bottom up, without following links."""
        check_deletable(self.root, path)
        if os.path.islink(path) or not os.path.isdir(path):
            raise StepError(f"housekeeping: {path} is not a plain folder")
        files = size = 0
        for _folder, dirs, names, dir_fd in os.fwalk(path, topdown=False, follow_symlinks=False):
            # A link to a folder is listed among the folders: it is removed as a link, unentered.
            links = [d for d in dirs if stat.S_ISLNK(os.stat(d, dir_fd=dir_fd, follow_symlinks=False).st_mode)]
            for name in names + links:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                files += 1
                size += st.st_size if stat.S_ISREG(st.st_mode) else 0
                if not self.dry_run:
                    os.unlink(name, dir_fd=dir_fd)
            if not self.dry_run:
                for d in dirs:
                    if d not in links:
                        os.rmdir(d, dir_fd=dir_fd)
        if not self.dry_run:
            os.rmdir(path)
        self._count(area, path, files, size)


# ----------------------------------------------------------------------------------------------
# What each area keeps.
# ----------------------------------------------------------------------------------------------

def subfolders(folder):
    """Plain subfolders (no links), sorted; none when the folder is absent."""
    if not os.path.isdir(folder) or os.path.islink(folder):
        return []
    return sorted(e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))


def newest_change(folder):
    """The latest mtime of the folder and anything in it (links not followed)."""
    newest = os.lstat(folder).st_mtime
    for here, dirs, names in os.walk(folder, followlinks=False):
        for name in dirs + names:
            try:
                newest = max(newest, os.lstat(os.path.join(here, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def prune_scratch(pruner, cutoff, active_runs):
    """work/<dag>/<run>/ of runs not active and unchanged since the cutoff. Both conditions: the
    DAG's list says which runs Airflow still runs (a run may wait for days), the age protects a
    run that started after the list was made, or the scratch of a step run by hand."""
    for dag_dir in subfolders(os.path.join(pruner.root, "work")):
        for run_dir in subfolders(dag_dir):
            key = f"{os.path.basename(dag_dir)}/{os.path.basename(run_dir)}"
            if key in active_runs or newest_change(run_dir) >= cutoff:
                continue
            pruner.remove_tree("work", run_dir)


def prune_staging(pruner, cutoff):
    """Staged data files older than the cutoff whose bytes are archived under the same name in
    raw/<night>/ (the digest the archive step recorded). Partial downloads, bookkeeping dotfiles,
    and anything not archived or different from the archive stay."""
    for night_dir in subfolders(os.path.join(pruner.root, "staging")):
        archived = recorded(os.path.join(pruner.root, "raw", os.path.basename(night_dir)))
        for name in downlink_data.files_in(night_dir):
            path = os.path.join(night_dir, name)
            if os.path.islink(path) or os.lstat(path).st_mtime >= cutoff or name not in archived:
                continue
            if sha256_file(path) == archived[name]:
                pruner.remove_file("staging", path)


def recorded_at(record):
    try:
        when = datetime.datetime.fromisoformat(record.get("recorded_at") or "")
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)).timestamp()


def prune_quarantine(pruner, cutoff, now):
    """Quarantined bytes recorded and last changed before the cutoff. The records stay, marked
    with pruned_at; one copy of the bytes may back several records (quarantine.keep_bytes)."""
    pruned = []
    qroot = os.path.join(pruner.root, "quarantine")
    for night_dir in subfolders(qroot):
        by_bytes = {}
        for record_path in downlink_data.record_paths(night_dir):
            try:
                record = downlink_data.read_record(record_path)
            except (OSError, ValueError):
                continue  # unreadable: left for a person to look at
            if record.get("path") and not record.get("pruned_at"):
                by_bytes.setdefault(os.path.join(pruner.root, record["path"]), []).append((record_path, record))
        for path, holders in sorted(by_bytes.items()):
            if os.path.dirname(os.path.abspath(path)) != os.path.abspath(night_dir):
                continue  # a record pointing elsewhere is not this area's to prune
            if os.path.islink(path) or not os.path.isfile(path) or os.lstat(path).st_mtime >= cutoff:
                continue
            if any((recorded_at(r) or 0) >= cutoff for _, r in holders):
                continue
            size = pruner.remove_file("quarantine", path)
            for record_path, record in holders:
                pruned.append(record)
                if not pruner.dry_run:
                    write_json(record_path, {**record, "pruned_at": now.isoformat(), "pruned_bytes": size})
    return pruned


def mark_rows(root):
    """Copy pruned_at from every record into its database row where the row lacks it (idempotent:
    a run that failed here is made good by the next). Returns rows updated."""
    from downlink import db

    marked = []
    for night_dir in subfolders(os.path.join(root, "quarantine")):
        for record_path in downlink_data.record_paths(night_dir):
            try:
                record = downlink_data.read_record(record_path)
            except (OSError, ValueError):
                continue
            if record.get("pruned_at") and record.get("night") and record.get("stage"):
                marked.append((record["pruned_at"], record["night"], record["filename"], record["stage"]))
    if not marked:
        return 0
    with db.connect() as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany("UPDATE quarantine SET pruned_at = %s WHERE night = %s AND filename = %s AND stage = %s "
                        "AND pruned_at IS NULL", marked, returning=False)
        return cur.rowcount if cur.rowcount >= 0 else 0


# ----------------------------------------------------------------------------------------------

def housekeep(root, *, dry_run, keep_scratch_days, keep_staging_days, keep_quarantine_days, active_runs=(), now=None):
    """Prune the three areas; the report (a dict). Nothing changes when dry_run."""
    for name, days in (("scratch", keep_scratch_days), ("staging", keep_staging_days), ("quarantine", keep_quarantine_days)):
        if days < 1:
            raise StepError(f"keep {name} days must be at least 1 (got {days:g}): housekeeping never deletes today's files")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    t = now.timestamp()
    pruner = Pruner(root, dry_run)
    prune_scratch(pruner, t - keep_scratch_days * DAY, set(active_runs))
    prune_staging(pruner, t - keep_staging_days * DAY)
    pruned = prune_quarantine(pruner, t - keep_quarantine_days * DAY, now)
    return {
        "dry_run": dry_run, "at": now.isoformat(),
        "keep_days": {"work": keep_scratch_days, "staging": keep_staging_days, "quarantine": keep_quarantine_days},
        "areas": pruner.areas,
        "total": {"files": sum(a["files"] for a in pruner.areas.values()), "bytes": sum(a["bytes"] for a in pruner.areas.values())},
        "quarantine_records_marked": len(pruned),
    }


def write_report(root, report):
    stamp = report["at"][:10] + ("-dry-run" if report["dry_run"] else "")
    path = os.path.join(root, REPORTS, f"{stamp}.json")
    write_json(path, report)
    return path


def run(args):
    root = layout.data_root()
    report = housekeep(root, dry_run=args.dry_run, keep_scratch_days=args.keep_scratch_days,
                       keep_staging_days=args.keep_staging_days, keep_quarantine_days=args.keep_quarantine_days,
                       active_runs=args.active_runs)
    if not args.dry_run:
        if settings.get("archive_dsn"):
            report["quarantine_rows_marked"] = mark_rows(root)
        else:
            print("housekeeping: DOWNLINK_ARCHIVE_DSN not set: quarantine rows not marked (the records are)", file=sys.stderr)
    report["report"] = os.path.relpath(write_report(root, report), root)
    print(json.dumps(report, indent=2))
    verb = "would free" if args.dry_run else "freed"
    print(f"housekeeping: {verb} {report['total']['files']} files, {report['total']['bytes']} bytes "
          + ", ".join(f"({a}: {v['files']} files, {v['bytes']} bytes)" for a, v in report["areas"].items()))
    return 0
