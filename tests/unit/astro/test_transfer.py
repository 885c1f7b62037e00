"""download and archive: verification, resume, quarantine, no silent overwrite, idempotence."""
import hashlib
import http.server
import json
import os
import threading
import time

import numpy as np
import pytest
from astropy.io import fits

from downlink import StepError, archive, checksum, download, quarantine
from downlink.checksum import sha256_file

NIGHT = "2026-01-02"


def fits_bytes(value):
    hdu = fits.PrimaryHDU(np.full((64, 64), value, dtype=np.int16))
    hdu.header["IMAGETYP"] = "BIAS"
    from io import BytesIO
    buf = BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


def publish(folder, files, lie=None):
    """Write files into folder/<night>/ with a manifest; `lie` maps a name to a wrong sha256."""
    night = folder / NIGHT
    night.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, data in files.items():
        (night / name).write_bytes(data)
        entries.append({"name": name, "size": len(data), "sha256": (lie or {}).get(name, hashlib.sha256(data).hexdigest())})
    (night / "manifest.json").write_text(json.dumps({"files": entries}))
    return night


def run_both(source):
    counts = download.download_night(download.make_source(str(source)), NIGHT)
    return counts, archive.archive_night(NIGHT)


def test_directory_source_downloads_verifies_and_archives(tmp_path, data_root):
    src = tmp_path / "src"
    publish(src, {"a.fits": fits_bytes(1), "b.fits": fits_bytes(2), "junk.fits": b"not fits at all" * 10},
            lie={"b.fits": "0" * 64})
    counts, arch = run_both(src)
    assert counts == {"listed": 3, "downloaded": 1, "skipped": 0, "quarantined": 2}
    # the archive holds a.fits and the record of its sha256 (checksum.py), which the index step reads
    assert sorted(os.listdir(data_root / "raw" / NIGHT)) == [".sha256.json", "a.fits"]
    assert checksum.recorded(str(data_root / "raw" / NIGHT)) == {"a.fits": sha256_file(data_root / "raw" / NIGHT / "a.fits")}
    reasons = {r["filename"]: r["reason"] for r in quarantine.records(NIGHT)}
    assert "does not match the manifest" in reasons["b.fits"]
    assert "not a readable FITS file" in reasons["junk.fits"]
    assert not os.access(data_root / "raw" / NIGHT / "a.fits", os.W_OK) or os.geteuid() == 0


def test_rerun_skips_what_is_held_and_keeps_one_copy_of_bad_bytes(tmp_path, data_root):
    src = tmp_path / "src"
    publish(src, {"a.fits": fits_bytes(1), "junk.fits": b"x" * 100})
    run_both(src)
    counts, arch = run_both(src)
    assert counts["skipped"] == 1 and counts["downloaded"] == 0 and counts["quarantined"] == 1
    assert arch["archived"] == 0
    assert sorted(os.listdir(data_root / "quarantine" / NIGHT)) == ["junk.fits", "junk.fits.download.reason.json"]


def test_unsafe_manifest_names_are_rejected_and_nothing_escapes(tmp_path, data_root):
    src = tmp_path / "src"
    night = publish(src, {"a.fits": fits_bytes(1)})
    manifest = json.loads((night / "manifest.json").read_text())
    manifest["files"].append({"name": "../../etc/passwd", "size": 1, "sha256": "0" * 64})
    (night / "manifest.json").write_text(json.dumps(manifest))
    counts, _ = run_both(src)
    assert counts["quarantined"] == 1 and counts["downloaded"] == 1
    assert not (data_root / "etc").exists() and not (tmp_path / "etc").exists()
    assert any("unsafe file name" in r["reason"] for r in quarantine.records(NIGHT))


def test_a_different_file_of_the_same_name_is_never_overwritten(tmp_path, data_root):
    first, second = tmp_path / "one", tmp_path / "two"
    publish(first, {"a.fits": fits_bytes(1)})
    publish(second, {"a.fits": fits_bytes(2)})
    run_both(first)
    counts, arch = run_both(second)
    assert arch["quarantined"] == 1
    held = (data_root / "raw" / NIGHT / "a.fits").read_bytes()
    assert held == fits_bytes(1)
    assert any("already archived" in r["reason"] for r in quarantine.records(NIGHT))


def test_bad_manifest_is_a_clear_error(tmp_path, data_root):
    night = tmp_path / "src" / NIGHT
    night.mkdir(parents=True)
    (night / "manifest.json").write_text('{"files": [{"name": "a.fits"}]}')
    with pytest.raises(StepError, match="entry 0 needs"):
        download.download_night(download.make_source(str(tmp_path / "src")), NIGHT)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static server that honours 'Range: bytes=N-' (like nginx), and can cut a body short or
    trickle one file (1 KB every 0.1 s: 10 KB/s)."""
    cut_after = None
    trickle = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            if start >= len(data):  # as nginx does: nothing at or after that offset
                self.send_error(416)
                return
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = RangeHandler.cut_after
        if RangeHandler.trickle and self.path.endswith(RangeHandler.trickle):
            try:
                for i in range(0, len(body), 1024):
                    self.wfile.write(body[i:i + 1024])
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up on us
                pass
            self.close_connection = True
            return
        self.wfile.write(body[:limit] if limit else body)
        if limit:
            self.close_connection = True


@pytest.fixture
def http_archive(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    RangeHandler.cut_after = None
    RangeHandler.trickle = None


def test_http_download_is_resumed_after_a_cut(http_archive, data_root):
    root, url = http_archive
    payload = fits_bytes(7)
    publish(root, {"a.fits": payload})
    RangeHandler.cut_after = 5000
    with pytest.raises(StepError, match="cut short"):
        download.download_night(download.make_source(url), NIGHT)
    part = data_root / "staging" / NIGHT / "a.fits.part"
    assert part.exists() and part.stat().st_size == 5000
    RangeHandler.cut_after = None
    counts = download.download_night(download.make_source(url), NIGHT)
    assert counts["downloaded"] == 1
    assert (data_root / "staging" / NIGHT / "a.fits").read_bytes() == payload


def test_http_source_unreachable_is_a_step_error(data_root):
    with pytest.raises(StepError, match="unreachable"):
        download.download_night(download.make_source("http://127.0.0.1:9"), NIGHT)


def test_a_file_truncated_on_the_server_is_quarantined_and_the_night_goes_on(http_archive, data_root):
    root, url = http_archive
    good, short = fits_bytes(1), fits_bytes(2)
    night = publish(root, {"good.fits": good, "short.fits": short})
    (night / "short.fits").write_bytes(short[:4000])  # the manifest still lists the full file
    counts = download.download_night(download.make_source(url), NIGHT)
    assert counts == {"listed": 2, "downloaded": 1, "skipped": 0, "quarantined": 1}
    reason = quarantine.find(NIGHT, "short.fits", "download")["reason"]
    assert f"the server's copy is 4000 bytes; the manifest says {len(short)} (truncated on the server)" in reason
    assert not (data_root / "staging" / NIGHT / "short.fits").exists()


def test_a_resumed_file_the_server_cannot_complete_is_quarantined(http_archive, data_root):
    """A cut transfer is resumed; when the server has nothing more (416), the file is short for good."""
    root, url = http_archive
    payload = fits_bytes(3)
    night = publish(root, {"a.fits": payload})
    RangeHandler.cut_after = 3000
    with pytest.raises(StepError, match="cut short"):
        download.download_night(download.make_source(url), NIGHT)
    RangeHandler.cut_after = None
    (night / "a.fits").write_bytes(payload[:3000])  # meanwhile the server's copy got truncated
    counts = download.download_night(download.make_source(url), NIGHT)
    assert counts["quarantined"] == 1
    assert "the server's copy ends at 3000 bytes" in quarantine.find(NIGHT, "a.fits", "download")["reason"]


def big_fits(value, side=160):
    """A FITS file of about 100 KB (160x160 float32)."""
    from io import BytesIO

    buf = BytesIO()
    fits.PrimaryHDU(np.full((side, side), value, dtype=np.float32)).writeto(buf)
    return buf.getvalue()


def test_a_trickling_transfer_is_stopped_kept_and_resumed_while_the_night_goes_on(http_archive, data_root, capsys):
    root, url = http_archive
    slow, fine = big_fits(1), fits_bytes(2)
    publish(root, {"slow.fits": slow, "fine.fits": fine})
    RangeHandler.trickle = "slow.fits"
    limit = download.RateLimit(min_rate="50k", grace=0.5)  # the server sends 10 KB/s
    counts = download.download_night(download.HttpSource(url, limit), NIGHT)
    assert counts["downloaded"] == 1  # fine.fits; no exception: the night goes on
    pending = download.pending_transfers(NIGHT)
    assert list(pending) == ["slow.fits"] and "too slow" in pending["slow.fits"]
    assert "DOWNLINK_MIN_TRANSFER_RATE=50k" in pending["slow.fits"]
    assert "WARNING: 1 transfer(s) pending" in capsys.readouterr().err
    part = data_root / "staging" / NIGHT / "slow.fits.part"
    assert 0 < part.stat().st_size < len(slow)
    assert not (data_root / "staging" / NIGHT / "slow.fits").exists()  # never passed on as good
    RangeHandler.trickle = None
    counts = download.download_night(download.HttpSource(url, limit), NIGHT)
    assert counts["downloaded"] == 1 and "resuming at byte" in capsys.readouterr().out
    assert (data_root / "staging" / NIGHT / "slow.fits").read_bytes() == slow
    assert download.pending_transfers(NIGHT) == {}


def test_a_night_whose_only_file_trickles_is_a_step_error(http_archive, data_root):
    root, url = http_archive
    publish(root, {"slow.fits": big_fits(1)})
    RangeHandler.trickle = "slow.fits"
    with pytest.raises(StepError, match="nothing of night .* could be fetched: slow.fits: too slow"):
        download.download_night(download.HttpSource(url, download.RateLimit(min_rate="50k", grace=0.5)), NIGHT)


@pytest.mark.parametrize("text, rate", [("10k", 10240), ("2M", 2 * 1024 ** 2), ("500", 500), ("0", 0), ("1.5 KB/s", 1536)])
def test_minimum_rates_are_read_as_people_write_them(text, rate):
    assert download.parse_rate(text) == rate


def test_a_minimum_rate_that_is_not_one_is_a_clear_error():
    with pytest.raises(StepError, match="DOWNLINK_MIN_TRANSFER_RATE='fast'"):
        download.parse_rate("fast")


SMALL = "/small"  # a 1 MB tmpfs (make test-unit-astro mounts it)


@pytest.fixture
def small_volume(monkeypatch):
    if not os.path.ismount(SMALL):
        pytest.skip(f"no small tmpfs at {SMALL} (make test-unit-astro mounts one)")
    root = os.path.join(SMALL, "data")
    os.makedirs(root, exist_ok=True)
    monkeypatch.setenv("DOWNLINK_DATA", root)
    yield root
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def test_a_full_volume_stops_download_with_a_clear_error_and_no_partial_file(tmp_path, small_volume, capsys):
    from downlink import cli

    src = tmp_path / "src"
    publish(src, {"a.fits": big_fits(1), "b.fits": big_fits(2, side=600)})  # 100 KB and 1.4 MB > 1 MB
    assert cli.main(["download", "--night", NIGHT, "--source", str(src)]) == 1
    err = capsys.readouterr().err
    assert f"no space left on the device writing staging/{NIGHT}/" in err, err
    assert f"data volume {small_volume}:" in err and "MB free of 1.0 MB" in err, err
    staged = os.listdir(os.path.join(small_volume, "staging", NIGHT))
    assert not [n for n in staged if n.endswith(".part") or "tmp" in n], staged


def test_a_full_archive_volume_leaves_no_partial_copy_and_keeps_the_staged_file(tmp_path, small_volume, monkeypatch):
    staging = os.path.join(small_volume, "staging", NIGHT)
    os.makedirs(staging)
    with open(os.path.join(staging, "big.fits"), "wb") as fh:
        fh.write(big_fits(3, side=400))  # 640 KB: staged fits, a second copy does not
    with pytest.raises(OSError) as exc:
        archive.archive_night(NIGHT)
    assert exc.value.errno == 28
    assert os.listdir(os.path.join(small_volume, "raw", NIGHT)) == []  # no half-copied frame
    assert os.path.exists(os.path.join(staging, "big.fits"))  # the rerun can still archive it


def test_a_verified_staged_file_is_archived_by_the_kernel_without_a_second_hash(tmp_path, data_root, monkeypatch):
    """Each byte is read once on the ingest path: download hashes it, archive copies it unread."""
    src = tmp_path / "src"
    publish(src, {"a.fits": fits_bytes(1), "b.fits": fits_bytes(2)})
    download.download_night(download.make_source(str(src)), NIGHT)
    hashed = []
    monkeypatch.setattr(archive, "copy_hashed", lambda path, fout: hashed.append(path) or checksum.copy_hashed(path, fout))
    counts = archive.archive_night(NIGHT)
    assert counts == {"archived": 2, "already": 0, "quarantined": 0}
    assert hashed == []
    raw = data_root / "raw" / NIGHT
    for name in ("a.fits", "b.fits"):
        assert (raw / name).read_bytes() == (src / NIGHT / name).read_bytes()
    assert checksum.recorded(str(raw)) == {n: sha256_file(src / NIGHT / n) for n in ("a.fits", "b.fits")}
    # the record of what was staged is pruned with the staged files
    assert checksum.load_json(str(data_root / "staging" / NIGHT / checksum.STAGED)) == {}


def test_a_staged_file_changed_after_verification_is_hashed_and_quarantined(tmp_path, data_root):
    src = tmp_path / "src"
    publish(src, {"a.fits": fits_bytes(1), "b.fits": fits_bytes(2)})
    download.download_night(download.make_source(str(src)), NIGHT)
    staged = data_root / "staging" / NIGHT / "a.fits"
    time.sleep(0.01)
    staged.write_bytes(fits_bytes(7))  # same size, other bytes, a new mtime
    counts = archive.archive_night(NIGHT)
    assert counts == {"archived": 1, "already": 0, "quarantined": 1}
    assert sorted(os.listdir(data_root / "raw" / NIGHT)) == [".sha256.json", "b.fits"]
    reason = {r["filename"]: r["reason"] for r in quarantine.records(NIGHT)}["a.fits"]
    assert "not the verified" in reason and hashlib.sha256(fits_bytes(1)).hexdigest() in reason


def test_archive_copies_in_python_where_the_kernel_cannot(tmp_path, data_root, monkeypatch):
    src = tmp_path / "src"
    publish(src, {"a.fits": fits_bytes(1)})
    download.download_night(download.make_source(str(src)), NIGHT)

    def cross_device(*args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", cross_device)
    assert archive.archive_night(NIGHT)["archived"] == 1
    assert (data_root / "raw" / NIGHT / "a.fits").read_bytes() == fits_bytes(1)
