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
  - its sha256 is computed from the bytes as they are written (no second read); size, sha256 and
    FITS validity are checked (gzip and tile-compressed files as astropy opens them: complete and
    readable, kept byte-for-byte as published); a bad file is quarantined with the reason and the
    rest of the night goes on;
  - a good file is renamed into staging/<night>/ for the archive step.
A transfer slower than DOWNLINK_MIN_TRANSFER_RATE (bytes/s, k/M suffixes; default 10k; 0: no
minimum), after DOWNLINK_TRANSFER_GRACE_SECONDS (default 60), is stopped: its partial file is kept
and listed in staging/<night>/.pending.json, the rest of the night goes on, and the next run
resumes it (the chain's diagnostics step fails, and mails, until it has arrived).
A full volume stops the step with the free space in the message; the partial file is deleted.
Exit codes: 0 done, even when files were quarantined or a slow transfer is pending; 1 the source
could not be read or a transfer was cut short (partial files are kept, and a retry resumes them),
or nothing of the night could be fetched; 2 bad usage.
"""
import concurrent.futures
import errno
import json
import os
import re
import sys
import time

import downlink_data
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from downlink import StepError, layout, settings
from downlink.checksum import HashingWriter, copy_hashed, remember_staged, sha256_file, sha256_prefix
from downlink.fitscheck import verify_fits
from downlink.outputs import write_json
from downlink.quarantine import find, quarantine, release

# Small enough that a trickling transfer returns control often (each block is checked against
# the minimum rate), large enough to cost little at full speed.
CHUNK = 1 << 14
TIMEOUT = (10, 60)  # connect, read (seconds): a stalled server fails the transfer, which resumes on retry
PENDING = ".pending.json"
FULL = (errno.ENOSPC, errno.EDQUOT)


class TooSlow(Exception):
    """A transfer below the minimum rate: stopped, its partial file kept for a later resume."""


def parse_rate(text):
    """'10k' -> 10240 bytes/s; '0' -> 0 (no minimum)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)[bB]?(?:/s)?\s*", str(text))
    if not m:
        raise StepError(f"DOWNLINK_MIN_TRANSFER_RATE={text!r}: expected bytes per second, e.g. 10k or 2M")
    return float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2}[m.group(2).lower()]


def human_rate(bps):
    return f"{bps / 1024:.1f} KB/s" if bps < 1024 ** 2 else f"{bps / 1024 ** 2:.1f} MB/s"


class RateLimit:
    """The slowest transfer accepted: it must average min_rate after a grace period."""

    def __init__(self, min_rate=None, grace=None):
        self.setting = settings.get("min_transfer_rate") if min_rate is None else str(min_rate)
        self.min_rate = parse_rate(self.setting)
        self.grace = settings.get("transfer_grace_seconds") if grace is None else float(grace)

    def deadline(self, nbytes, start):
        return float("inf") if self.min_rate <= 0 else start + self.grace + nbytes / self.min_rate

    def too_slow(self, got, expected, elapsed):
        return TooSlow(f"too slow: {got} of {expected} bytes in {elapsed:.0f} s ({human_rate(got / max(elapsed, 1e-9))}; "
                       f"the minimum is DOWNLINK_MIN_TRANSFER_RATE={self.setting}); the partial file is kept and "
                       "the next run resumes it")


def add_parser(sub):
    p = sub.add_parser("download", help="fetch the night's new files from the archive source", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--night", required=True)
    p.add_argument("--source", default=settings.get("source"), help="base URL or directory (default: $DOWNLINK_SOURCE or %(default)s)")
    p.add_argument("--min-transfer-rate", default=settings.get("min_transfer_rate"),
                   help="bytes/s (k, M suffixes; 0: no minimum) a transfer must keep after the grace period "
                        "(default: $DOWNLINK_MIN_TRANSFER_RATE or %(default)s)")
    p.add_argument("--transfer-grace-seconds", type=float, default=settings.get("transfer_grace_seconds"),
                   help="how long a transfer may run before the minimum rate applies (default: $DOWNLINK_TRANSFER_GRACE_SECONDS or %(default)s)")
    return p


def check_manifest(manifest, where):
    """The manifest's file list, each entry checked (downlink_data, the contract the arrivals
    trigger reads manifests by); a malformed manifest is a StepError."""
    try:
        return downlink_data.manifest_entries(manifest, where)
    except downlink_data.ManifestError as exc:
        raise StepError(str(exc)) from None


class HttpSource:
    # One transfer at a time: the minimum rate applies to each transfer, and transfers at once
    # would share the link's bandwidth.
    transfers = 1

    def __init__(self, base, limit=None):
        self.base = base.rstrip("/")
        self.limit = limit or RateLimit()
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
        """Fetch into `part`, resuming it if present. Returns (None or a permanent-failure reason,
        the sha256 of the part file's bytes or None when unknown)."""
        url = f"{self.base}/{night}/{requests.utils.quote(name)}"
        have = os.path.getsize(part) if os.path.exists(part) else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self.session.get(url, headers=headers, stream=True, timeout=TIMEOUT) as resp:
            if resp.status_code == 404:
                return "listed in the manifest but not on the server (HTTP 404)", None
            if resp.status_code == 416:  # nothing left to fetch: the part file is complete (or too long)
                if size is not None and have < size:
                    return f"the server's copy ends at {have} bytes; the manifest says {size} (truncated on the server)", None
                return None, None
            if resp.status_code not in (200, 206):
                raise StepError(f"{url}: HTTP {resp.status_code}")
            offered = resp.headers.get("Content-Length")
            start = have if resp.status_code == 206 else 0
            if size is not None and offered is not None and offered.isdigit() and start + int(offered) < size:
                # The server declares less than the manifest: its copy is short, not our transfer.
                return (f"the server's copy is {start + int(offered)} bytes; the manifest says {size} "
                        "(truncated on the server)"), None
            mode = "ab" if resp.status_code == 206 else "wb"
            if start:
                print(f"{name}: resuming at byte {start}")
            began = time.monotonic()
            expected = (size - start) if size is not None else int(offered or 0)
            deadline = self.limit.deadline(expected, began)
            got = 0
            with open(part, mode) as raw_fh:
                fh = HashingWriter(raw_fh, sha256_prefix(part) if start else None)
                for block in resp.iter_content(CHUNK):
                    fh.write(block)
                    got += len(block)
                    if time.monotonic() > deadline and got < expected:
                        raw_fh.flush()
                        raise self.limit.too_slow(got, expected, time.monotonic() - began)
                raw_fh.flush()
                os.fsync(raw_fh.fileno())
        return None, fh.hexdigest()


class DirectorySource:
    # A local or NFS folder: copying is bound by hashing (one core each), so two files at once.
    transfers = 2

    def __init__(self, root):
        self.root = root

    def manifest(self, night):
        folder = os.path.join(self.root, str(night))
        if not os.path.isdir(folder):
            raise StepError(f"{folder}: no such night folder in the archive source")
        listed = os.path.join(folder, downlink_data.MANIFEST)
        if os.path.exists(listed):
            try:
                return downlink_data.read_manifest(listed)
            except downlink_data.ManifestError as exc:
                raise StepError(str(exc)) from None
        names = downlink_data.published_names(folder)
        return [{"name": n, "size": os.path.getsize(os.path.join(folder, n)),
                 "sha256": sha256_file(os.path.join(folder, n))} for n in names]

    def fetch(self, night, name, part, size=None):
        src = os.path.join(self.root, str(night), name)
        if not os.path.exists(src):
            return "listed in the manifest but not in the source folder", None
        with open(part, "wb") as fh:
            digest = copy_hashed(src, fh)
        return None, digest


def make_source(spec, limit=None):
    if re.match(r"^https?://", spec):
        return HttpSource(spec, limit)
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    return DirectorySource(path)


def already_held(path, sha256):
    return os.path.exists(path) and sha256_file(path) == sha256


def verify(part, entry, digest=None):
    """None if the fetched bytes are the manifest's file and valid FITS, else the reason.
    digest: the sha256 computed while the bytes were written (read again when unknown)."""
    size = os.path.getsize(part)
    if size != entry["size"]:
        return f"size {size} bytes, the manifest says {entry['size']}"
    digest = digest or sha256_file(part)
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
    pending = {}
    verified = {}
    try:
        fetch_entries(source, night, entries, staging, raw, counts, interrupted, pending, verified)
    finally:
        if verified:  # the archive step copies these without hashing them again (checksum.py)
            remember_staged(staging, verified)
    print(f"night {night}: {counts['listed']} listed, {counts['downloaded']} downloaded, "
          f"{counts['skipped']} already held, {counts['quarantined']} quarantined")
    record_pending(staging, pending)
    if interrupted:
        raise StepError(f"{len(interrupted)} transfer(s) cut short, partial files kept for the retry: "
                        + "; ".join(interrupted + [f"{n}: {r}" for n, r in pending.items()]))
    if pending:
        slow = "; ".join(f"{n}: {r}" for n, r in pending.items())
        if not (layout.files_in(staging) or layout.files_in(raw)):
            raise StepError(f"nothing of night {night} could be fetched: {slow}")
        print(f"WARNING: {len(pending)} transfer(s) pending, the rest of the night goes on: {slow}", file=sys.stderr)
    return counts


def fetch_entries(source, night, entries, staging, raw, counts, interrupted, pending, verified):
    """Fetch and verify each manifest entry into staging; counts, interrupted (transfers to retry),
    pending (too slow) and verified ({name: sha256} of the files staged) are filled in. The
    transfers run source.transfers at a time; their outcomes are settled here in manifest order."""
    wanted = [entry for entry in entries if needs_fetch(night, entry, staging, raw, counts)]
    with concurrent.futures.ThreadPoolExecutor(source.transfers) as pool:
        jobs = [(entry, pool.submit(transfer, source, night, entry, staging)) for entry in wanted]
        try:
            for entry, job in jobs:
                settle(night, entry, staging, job, counts, interrupted, pending, verified)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # a full volume, say: start no more transfers
            for entry, job in jobs:  # and leave no partial file of the others that hit it too
                if not job.cancelled() and isinstance(job.exception(), OSError) and job.exception().errno in FULL:
                    drop_part(staging, entry["name"])
            raise


def needs_fetch(night, entry, staging, raw, counts):
    """False (counted) for an entry that is rejected, already held or known bad as published."""
    name = entry["name"]
    try:
        layout.safe_name(name)
    except StepError as exc:
        quarantine(night, name, "download", f"rejected: {exc}")
        counts["quarantined"] += 1
        return False
    sha = entry["sha256"].lower()
    if already_held(os.path.join(raw, name), sha) or already_held(os.path.join(staging, name), sha):
        counts["skipped"] += 1
        return False
    earlier = find(night, name, "download")
    if earlier and earlier.get("sha256") == sha:
        # The published file itself is bad (its bytes match the manifest): fetching again cannot help.
        counts["quarantined"] += 1
        return False
    return True


def transfer(source, night, entry, staging):
    """Fetch one entry to its .part file and verify it: ("good", None), ("bad", the reason) or
    ("short", bytes received). Transfer errors are raised, for settle() to sort."""
    name = entry["name"]
    part = os.path.join(staging, name + ".part")
    reason, digest = source.fetch(night, name, part, entry["size"])
    if not reason and os.path.getsize(part) < entry["size"]:
        # A body cut short is not always an error to the HTTP client (urllib3 1.26 does not
        # enforce Content-Length): keep the part file, and the retry resumes it.
        return "short", os.path.getsize(part)
    reason = reason or verify(part, entry, digest)
    return ("bad", reason) if reason else ("good", None)


def settle(night, entry, staging, job, counts, interrupted, pending, verified):
    """Book one transfer's outcome: staged, quarantined, pending or to be retried."""
    name = entry["name"]
    part = os.path.join(staging, name + ".part")
    try:
        outcome, detail = job.result()
    except TooSlow as exc:
        pending[name] = str(exc)
        return
    except OSError as exc:
        if exc.errno in FULL:
            # Resuming cannot help until space is freed, and the partial file only takes more.
            drop_part(staging, name)
            raise OSError(exc.errno, os.strerror(exc.errno), layout.relative(part)) from exc
        interrupted.append(f"{name}: {exc}")
        return
    except requests.RequestException as exc:
        interrupted.append(f"{name}: {exc}")
        return
    if outcome == "short":
        interrupted.append(f"{name}: {detail} of {entry['size']} bytes received")
        return
    if outcome == "bad":
        quarantine(night, name, "download", detail, src=part)
        counts["quarantined"] += 1
        return
    os.replace(part, os.path.join(staging, name))
    verified[name] = entry["sha256"].lower()
    release(night, name, "download")
    counts["downloaded"] += 1


def drop_part(staging, name):
    part = os.path.join(staging, name + ".part")
    if os.path.exists(part):
        os.unlink(part)


def record_pending(staging, pending):
    """staging/<night>/.pending.json lists the transfers a later run must finish (diagnostics reads it)."""
    path = os.path.join(staging, PENDING)
    if pending:
        write_json(path, {"pending": [{"name": n, "reason": r} for n, r in pending.items()]})
    elif os.path.exists(path):
        os.unlink(path)


def pending_transfers(night):
    """{name: reason} of the night's transfers left unfinished by the last download."""
    path = os.path.join(layout.night_dir("staging", night), PENDING)
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return {e["name"]: e["reason"] for e in json.load(fh)["pending"]}


def run(args):
    night = layout.parse_night(args.night)
    download_night(make_source(args.source, RateLimit(args.min_transfer_rate, args.transfer_grace_seconds)), night)
    return 0
