"""The reports file server (runs inside the Airflow image), mounted under /reports the way the
api-server mounts a plugin's fastapi_apps."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from downlink_airflow import reports_plugin  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\nfake"


@pytest.fixture
def reports(tmp_path, monkeypatch):
    root = tmp_path / "reports"
    night = root / "2026-11-24"
    night.mkdir(parents=True)
    (night / "index.html").write_text("<h1>Night 2026-11-24</h1>")
    (night / "seeing_sky.png").write_bytes(PNG)
    (night / ".tmp-abc.json").write_text("{}")  # a summary being written
    (root / "secret.txt").write_text("no")
    (tmp_path / "passwd").write_text("root:x:0:0")
    monkeypatch.setenv("DOWNLINK_REPORTS_DIR", str(root))
    return root


def mounted():
    api_server = FastAPI()
    for sub in reports_plugin.DownlinkReportsPlugin.fastapi_apps:
        api_server.mount(sub["url_prefix"], sub["app"])
    return api_server


@pytest.fixture
def client(reports):
    """As a signed-in user (the e2e tests sign in for real)."""
    reports_plugin.app.dependency_overrides[reports_plugin.get_user] = lambda: "viewer"
    yield TestClient(mounted())
    reports_plugin.app.dependency_overrides.clear()


def test_reports_need_a_signed_in_user(reports):
    anonymous = TestClient(mounted())
    for path in ("/reports/", "/reports/latest", "/reports/2026-11-24/", "/reports/2026-11-24/seeing_sky.png"):
        assert anonymous.get(path, follow_redirects=False).status_code == 401, path


def test_lists_nights_newest_first(client, reports):
    (reports / "2026-11-25").mkdir()
    (reports / "2026-11-25" / "index.html").write_text("x")
    (reports / "2026-11-26").mkdir()  # no report in it (yet): not listed
    page = client.get("/reports/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.index('href="2026-11-25/"') < page.text.index('href="2026-11-24/"')
    assert "2026-11-26" not in page.text


def test_an_empty_reports_folder_says_so(client, reports, monkeypatch):
    monkeypatch.setenv("DOWNLINK_REPORTS_DIR", str(reports / "nothing-here"))
    assert "No reports yet" in client.get("/reports/").text


def test_serves_a_night_and_its_images(client):
    page = client.get("/reports/2026-11-24/")
    assert page.status_code == 200 and "Night 2026-11-24" in page.text
    png = client.get("/reports/2026-11-24/seeing_sky.png")
    assert png.status_code == 200 and png.content == PNG and png.headers["content-type"] == "image/png"
    head = client.head("/reports/2026-11-24/seeing_sky.png")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(PNG)) and not head.content


def test_a_night_without_slash_redirects_to_its_folder(client):
    # A relative redirect: right whatever prefix a proxy puts in front of the api-server.
    response = client.get("/reports/2026-11-24", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "2026-11-24/"


@pytest.mark.parametrize("path", [
    "/reports/2026-11-23/",                      # no such night
    "/reports/2026-11-24/nothere.png",           # no such file
    "/reports/2026-11-24/secret.txt",            # not a report file type
    "/reports/2026-11-24/.tmp-abc.json",         # hidden (partial) file
    "/reports/..%2F..%2Fetc/passwd",             # traversal
    "/reports/..%2Fpasswd",
    "/reports/2026-11-24/..%2F..%2Fpasswd",
    "/reports/2026-11-24/..%2Fsecret.txt",
    "/reports/%2e%2e/secret.txt",
    "/reports/%5C%5Cevil.example",               # would be an open redirect
])
def test_missing_files_and_traversal_are_404(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404, (path, response.status_code, response.text[:200])


def test_no_interactive_docs(client):
    assert client.get("/reports/docs").status_code == 404
    assert client.get("/reports/openapi.json").status_code == 404


def test_plugin_declares_the_app_and_a_nav_entry():
    plugin = reports_plugin.DownlinkReportsPlugin
    assert plugin.fastapi_apps == [{"app": reports_plugin.app, "url_prefix": "/reports", "name": "Nightly reports"}]
    assert plugin.external_views == [{"name": "Nightly reports", "href": "/reports/latest", "destination": "nav",
                                      "url_route": "nightly-reports"}]


def test_latest_opens_the_newest_night_or_the_empty_list(client, reports, monkeypatch):
    (reports / "2026-11-25").mkdir()
    (reports / "2026-11-25" / "index.html").write_text("x")
    resp = client.get("/reports/latest", follow_redirects=False)
    assert resp.status_code in (302, 307) and resp.headers["location"] == "/reports/2026-11-25/"
    monkeypatch.setenv("DOWNLINK_REPORTS_DIR", "/nonexistent")
    assert client.get("/reports/latest", follow_redirects=False).headers["location"] == "/reports/"


# Step-written HTML on the UI's origin: no script in it may run (issue 13).
@pytest.mark.parametrize("path", ["/reports/", "/reports/2026-11-24/", "/reports/2026-11-24/index.html",
                                  "/reports/2026-11-24/seeing_sky.png", "/reports/2026-11-24/nothere.html",
                                  "/reports/2026-11-24", "/reports/latest"])
def test_every_answer_is_sandboxed_and_never_sniffed(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.headers["x-content-type-options"] == "nosniff", path
    csp = [d.strip() for d in response.headers["content-security-policy"].split(";")]
    sandbox = next(d for d in csp if d.startswith("sandbox")).split()
    assert "allow-scripts" not in sandbox and "allow-top-navigation" not in sandbox and "allow-forms" not in sandbox
    assert "default-src 'none'" in csp and "img-src 'self'" in csp
    assert not any(d.startswith("script-src") for d in csp)


def test_sandbox_headers_for_anonymous_refusals_too(reports):
    response = TestClient(mounted()).get("/reports/2026-11-24/", follow_redirects=False)
    assert response.status_code == 401 and response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("sandbox")


@pytest.mark.parametrize("path", ["/reports/2026-11-24%0A/", "/reports/2026-11-24/index.html%0A",
                                  "/reports/2026-11-24%0A"])
def test_names_are_checked_whole(client, path):
    assert client.get(path).status_code == 404
