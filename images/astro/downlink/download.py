"""`downlink download --night YYYY-MM-DD`: fetch the night's new files from the archive source.

The source (env DOWNLINK_SOURCE, or --source) is either
  - an HTTP(S) base URL serving <night>/manifest.json and <night>/<file>, or
  - a local or NFS directory holding <night>/ folders; manifest.json there is optional (without
    one, every file in the folder is taken and its checksum computed).
A manifest is {"files": [{"name": ..., "size": ..., "sha256": ...}, ...]}.

For each file in the manifest:
  - already archived (raw/<night>/<name> with the same sha256) or already staged: skipped;
  - fetched to staging/<night>/<name>.part; an interrupted HTTP download is resumed with a Range
    request on the next try;
  - size, sha256 and FITS validity are checked; a bad file is quarantined with the reason and
    the rest of the night goes on;
  - a good file is renamed into staging/<night>/ for the archive step.
Exit codes: 0 done, even when files were quarantined; 1 the source could not be read or a
transfer was cut short (partial files are kept, and a retry resumes them); 2 bad usage.
"""
import json
import os
import re
import shutil

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from downlink import StepError, layout
from downlink.checksum import sha256_file
from downlink.fitsmeta import verify_fits
from downlink.outputs import write_json
from downlink.quarantine import find, quarantine, release

DEFAULT_SOURCE = "http://archive-server:8080"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 16
TIMEOUT = (10, 60)  # connect, read (seconds): a stalled server fails the transfer, which resumes on retry


def add_parser(sub):
    p = sub.add_parser("download", help="fetch the night's new files from the archive source", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--night", required=True)
    p.add_argument("--source", default=os.environ.get("DOWNLINK_SOURCE", DEFAULT_SOURCE),
                   help="base URL or directory (default: $DOWNLINK_SOURCE or %(default)s)")
    return p


def check_manifest(manifest, where):
    """The manifest's file list, each entry checked; a malformed manifest is a StepError."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        raise StepError(f"{where}: not a manifest (no 'files' list)")
    for i, entry in enumerate(files):
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("size"), int) and entry["size"] >= 0
                and isinstance(entry.get("sha256"), str) and SHA256.match(entry["sha256"].lower())):
            raise StepError(f"{where}: entry {i} needs a name, a size >= 0 and a sha256: {entry!r}")
    return files


class HttpSource:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        retry = Retry(total=3, backoff_factor=1, status_forcelist=(502, 503, 504), allowed_methods=("GET",))
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def manifest(self, night):
        url = f"{self.base}/{night}/manifest.json"
        try:
            resp = self.session.get(url, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise StepError(f"archive source unreachable: {url}: {exc}") from exc
        if resp.status_code == 404:
            raise StepError(f"{url}: no manifest for night {night} (404)")
        if resp.status_code != 200:
            raise StepError(f"{url}: HTTP {resp.status_code}")
        try:
            return check_manifest(resp.json(), url)
        except ValueError as exc:
            raise StepError(f"{url}: manifest is not JSON: {exc}") from exc

    def fetch(self, night, name, part, size=None):
        """Fetch into `part`, resuming it if present. Returns None, or a permanent-failure reason."""
        url = f"{self.base}/{night}/{requests.utils.quote(name)}"
        have = os.path.getsize(part) if os.path.exists(part) else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self.session.get(url, headers=headers, stream=True, timeout=TIMEOUT) as resp:
            if resp.status_code == 404:
                return "listed in the manifest but not on the server (HTTP 404)"
            if resp.status_code == 416:  # nothing left to fetch: the part file is complete (or too long)
                if size is not None and have < size:
                    return f"the server's copy ends at {have} bytes; the manifest says {size} (truncated on the server)"
                return None
            if resp.status_code not in (200, 206):
                raise StepError(f"{url}: HTTP {resp.status_code}")
            offered = resp.headers.get("Content-Length")
            start = have if resp.status_code == 206 else 0
            if size is not None and offered is not None and offered.isdigit() and start + int(offered) < size:
                # The server declares less than the manifest: its copy is short, not our transfer.
                return (f"the server's copy is {start + int(offered)} bytes; the manifest says {size} "
                        "(truncated on the server)")
            mode = "ab" if resp.status_code == 206 else "wb"
            with open(part, mode) as fh:
                for block in resp.iter_content(CHUNK):
                    fh.write(block)
                fh.flush()
                os.fsync(fh.fileno())
        return None


class DirectorySource:
    def __init__(self, root):
        self.root = root

    def manifest(self, night):
        folder = os.path.join(self.root, str(night))
        if not os.path.isdir(folder):
            raise StepError(f"{folder}: no such night folder in the archive source")
        listed = os.path.join(folder, "manifest.json")
        if os.path.exists(listed):
            try:
                with open(listed) as fh:
                    return check_manifest(json.load(fh), listed)
            except ValueError as exc:
                raise StepError(f"{listed}: manifest is not JSON: {exc}") from exc
        names = layout.files_in(folder)
        return [{"name": n, "size": os.path.getsize(os.path.join(folder, n)),
                 "sha256": sha256_file(os.path.join(folder, n))} for n in names]

    def fetch(self, night, name, part, size=None):
        src = os.path.join(self.root, str(night), name)
        if not os.path.exists(src):
            return "listed in the manifest but not in the source folder"
        shutil.copyfile(src, part)
        return None


def make_source(spec):
    if re.match(r"^https?://", spec):
        return HttpSource(spec)
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    return DirectorySource(path)


def already_held(path, sha256):
    return os.path.exists(path) and sha256_file(path) == sha256


def verify(part, entry):
    """None if the fetched bytes are the manifest's file and valid FITS, else the reason."""
    size = os.path.getsize(part)
    if size != entry["size"]:
        return f"size {size} bytes, the manifest says {entry['size']}"
    digest = sha256_file(part)
    if digest != entry["sha256"].lower():
        return f"sha256 {digest} does not match the manifest's {entry['sha256'].lower()}"
    try:
        verify_fits(part, size)
    except StepError as exc:
        return str(exc).replace(part, entry["name"])
    return None


def download_night(source, night):
    """Returns counts; raises StepError at the end if some transfers must be retried."""
    entries = source.manifest(night)
    staging = layout.night_dir("staging", night, create=True)
    raw = layout.night_dir("raw", night)
    write_json(os.path.join(staging, ".manifest.json"), {"night": str(night), "files": entries})
    counts = {"listed": len(entries), "downloaded": 0, "skipped": 0, "quarantined": 0}
    interrupted = []
    for entry in entries:
        name = entry["name"]
        try:
            layout.safe_name(name)
        except StepError as exc:
            quarantine(night, name, "download", f"rejected: {exc}")
            counts["quarantined"] += 1
            continue
        sha = entry["sha256"].lower()
        if already_held(os.path.join(raw, name), sha) or already_held(os.path.join(staging, name), sha):
            counts["skipped"] += 1
            continue
        earlier = find(night, name, "download")
        if earlier and earlier.get("sha256") == sha:
            # The published file itself is bad (its bytes match the manifest): fetching again cannot help.
            counts["quarantined"] += 1
            continue
        part = os.path.join(staging, name + ".part")
        try:
            reason = source.fetch(night, name, part, entry["size"])
        except (requests.RequestException, OSError) as exc:
            interrupted.append(f"{name}: {exc}")
            continue
        if not reason and os.path.getsize(part) < entry["size"]:
            # A body cut short is not always an error to the HTTP client (urllib3 1.26 does not
            # enforce Content-Length): keep the part file, and the retry resumes it.
            interrupted.append(f"{name}: {os.path.getsize(part)} of {entry['size']} bytes received")
            continue
        reason = reason or verify(part, entry)
        if reason:
            quarantine(night, name, "download", reason, src=part)
            counts["quarantined"] += 1
            continue
        os.replace(part, os.path.join(staging, name))
        release(night, name, "download")
        counts["downloaded"] += 1
    print(f"night {night}: {counts['listed']} listed, {counts['downloaded']} downloaded, "
          f"{counts['skipped']} already held, {counts['quarantined']} quarantined")
    if interrupted:
        raise StepError(f"{len(interrupted)} transfer(s) cut short, partial files kept for the retry: " + "; ".join(interrupted))
    return counts


def run(args):
    night = layout.parse_night(args.night)
    download_night(make_source(args.source), night)
    return 0
