"""download and archive: verification, resume, quarantine, no silent overwrite, idempotence."""
import hashlib
import http.server
import json
import os
import threading

import numpy as np
import pytest
from astropy.io import fits

from downlink import StepError, archive, download, quarantine

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
    assert sorted(os.listdir(data_root / "raw" / NIGHT)) == ["a.fits"]
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
    """A static server that honours 'Range: bytes=N-' (like nginx), and can cut a body short."""
    cut_after = None

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
