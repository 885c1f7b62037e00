"""The reports file server (runs inside the Airflow image)."""
import sys

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, "/opt/airflow/plugins")

from downlink_airflow import reports_plugin  # noqa: E402


@pytest.fixture
def client(tmp_path, monkeypatch):
    night = tmp_path / "2026-11-24"
    night.mkdir()
    (night / "index.html").write_text("<h1>Night 2026-11-24</h1>")
    (night / "seeing_sky.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (tmp_path / "secret.txt").write_text("no")
    monkeypatch.setenv("DOWNLINK_REPORTS_DIR", str(tmp_path))
    return TestClient(reports_plugin.app)


def test_lists_nights_newest_first(client, tmp_path):
    (tmp_path / "2026-11-25").mkdir()
    (tmp_path / "2026-11-25" / "index.html").write_text("x")
    page = client.get("/").text
    assert page.index("2026-11-25") < page.index("2026-11-24")


def test_serves_a_night_and_its_images(client):
    assert "Night 2026-11-24" in client.get("/2026-11-24/").text
    png = client.get("/2026-11-24/seeing_sky.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("path", ["/2026-11-23/", "/2026-11-24/nothere.png", "/..%2Fsecret.txt/index.html",
                                  "/2026-11-24/..%2F..%2Fsecret.txt", "/2026-11-24/secret.txt"])
def test_missing_files_and_traversal_are_404(client, path):
    assert client.get(path).status_code == 404


def test_plugin_declares_the_app_and_a_nav_entry():
    plugin = reports_plugin.DownlinkReportsPlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == "/reports"
    assert plugin.external_views[0]["href"] == "/reports/"
