"""The data-volume contract, shared by the steps (astro image) and the arrivals trigger (Airflow
image): how files are named and laid out, which files of a folder count as data, what a manifest
lists, how quarantine records are found and read, and how files are replaced atomically.
Stdlib only: both images install this one module (pyproject.toml here).

    <root>/<area>/<night>/   areas: staging raw quarantine masters reduced catalogs reports products work
    manifest.json            {"files": [{"name": ..., "size": ..., "sha256": ...}, ...]}
    quarantine/<night>/<name>.<stage>.reason.json   {"filename": name, "stage": ..., "reason": ..., ...}
    .* and *.part            never data: temporary files and partial downloads
"""
import contextlib
import json
import os
import re
import tempfile

AREAS = ("staging", "raw", "quarantine", "masters", "reduced", "catalogs", "reports", "products", "work")
MANIFEST = "manifest.json"
PARTIAL = ".part"
RECORD_SUFFIX = ".reason.json"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """A manifest that cannot be used, with where it came from and why."""


def night_dir(root, area, night):
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}")
    return os.path.join(root, area, str(night))


def is_data_name(name):
    """Dotfiles (temporary files) and partial downloads are never data."""
    return not name.startswith(".") and not name.endswith(PARTIAL)


def files_in(folder):
    """Names of the data files in a folder, sorted: regular files, no dotfiles, no partial
    downloads. An absent folder has none."""
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if is_data_name(n) and os.path.isfile(os.path.join(folder, n)))


def published_names(folder):
    """What a source folder without a manifest publishes: its data files but the manifest."""
    return [n for n in files_in(folder) if n != MANIFEST]


def manifest_entries(manifest, where):
    """The entries of a manifest (parsed JSON), each checked: a name, a size >= 0, a sha256."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        raise ManifestError(f"{where}: not a manifest (no 'files' list)")
    for i, entry in enumerate(files):
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("size"), int) and entry["size"] >= 0
                and isinstance(entry.get("sha256"), str) and SHA256.match(entry["sha256"].lower())):
            raise ManifestError(f"{where}: entry {i} needs a name, a size >= 0 and a sha256: {entry!r}")
    return files


def manifest_names(manifest, where):
    """The names a manifest lists (what the download step will fetch)."""
    return [entry["name"] for entry in manifest_entries(manifest, where)]


def read_manifest(path):
    """The checked entries of a manifest file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except ValueError as exc:
        raise ManifestError(f"{path}: manifest is not JSON: {exc}") from exc
    return manifest_entries(data, path)


def record_paths(folder):
    """The quarantine records of a night's quarantine folder, sorted."""
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if n.endswith(RECORD_SUFFIX) and not n.startswith(".") and os.path.isfile(os.path.join(folder, n))]


def read_record(path):
    """One quarantine record (a dict with at least `filename`)."""
    with open(path, encoding="utf-8") as fh:
        record = json.load(fh)
    if not isinstance(record, dict) or not isinstance(record.get("filename"), str):
        raise ValueError(f"{path}: not a quarantine record (no 'filename')")
    return record


def quarantined_names(folder):
    """Names with a readable quarantine record in the folder (an unreadable record is skipped:
    its file is then not held, and the next download decides again)."""
    names = set()
    for path in record_paths(folder):
        try:
            names.add(read_record(path)["filename"])
        except (OSError, ValueError):
            continue
    return names


def held_names(root, night):
    """Names the data volume is done with for a night: archived (raw/) or quarantined."""
    return set(files_in(night_dir(root, "raw", night))) | quarantined_names(night_dir(root, "quarantine", night))


@contextlib.contextmanager
def atomic_path(path, mode=None, fsync=False):
    """Write `path` in one step: yields a temporary path in the same folder (a dotfile ending in
    .part, which no reader takes for data), then renames it over `path`; on an error the temporary
    file is removed and `path` is untouched. mode: the file's permissions (default: as open()
    would make them under the umask); fsync: flush the bytes to disk before the rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=PARTIAL)
    os.close(fd)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path, data, mode=None, fsync=False, encoding="utf-8"):
    """Replace `path` with `data` (str or bytes) in one step (atomic_path)."""
    with atomic_path(path, mode, fsync) as tmp:
        if isinstance(data, str):
            with open(tmp, "w", encoding=encoding) as fh:
                fh.write(data)
        else:
            with open(tmp, "wb") as fh:
                fh.write(data)


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
