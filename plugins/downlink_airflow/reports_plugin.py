"""The nightly reports in the Airflow UI: a read-only file server mounted by the api-server at
/reports/ (the list of nights, newest first, then each night's index.html and its images), and a
"Nightly reports" entry in the UI's navigation bar, which shows the newest report inside the UI.

The reports are written by the `report` step to reports/<night>/ on the data volume, which the
api-server mounts read-only; DOWNLINK_REPORTS_DIR (default /data/reports) says where. Only names
of the form <YYYY-MM-DD>/<file>.{html,png,json} are served, so nothing else on the volume can be
reached (no "..", no hidden or partial files, no folders). Only signed-in users see them.

The files are written by steps, yet served on the UI's origin, where the login cookie lives: every
answer carries SECURITY_HEADERS, so a report's HTML is shown without running any script in it
(CSP sandbox, no allow-scripts) and nothing is sniffed into another type (nosniff)."""
import html
import os
import re

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from downlink_airflow.config import Settings

NIGHT = re.compile(r"\d{4}-\d{2}-\d{2}")  # always fullmatch (`$` would let "...\n" through)
FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(html|png|json)")
URL_PREFIX = "/reports"
# sandbox: no scripts, forms, popups, plugins or top navigation. allow-same-origin only keeps the
# page's own origin, so its images (signed-in users only) are fetched with the login cookie;
# without allow-scripts nothing in the page can read that cookie. The rest allows what a report
# is made of (its own images, inline CSS) and nothing else.
CSP = "; ".join([
    "sandbox allow-same-origin",
    "default-src 'none'",
    "img-src 'self'",
    "style-src 'unsafe-inline'",
    "frame-ancestors 'self'",  # shown inside the UI's page only
    "base-uri 'none'",
    "form-action 'none'",
])
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


def reports_dir():
    return Settings.from_env().reports_dir


def nights():
    """The nights that have a report, newest first."""
    root = reports_dir()
    if not os.path.isdir(root):
        return []
    return sorted((n for n in os.listdir(root) if NIGHT.fullmatch(n) and os.path.isfile(os.path.join(root, n, "index.html"))),
                  reverse=True)


# No /docs or /openapi.json: the interactive docs would pull scripts from a CDN, and there is no API here.
# Signed-in users only (any role): the same check as Airflow's own API, from the UI's session
# cookie or a bearer token.
app = FastAPI(title="Downlink nightly reports", docs_url=None, redoc_url=None, openapi_url=None,
              dependencies=[Depends(get_user)])


READ = ["GET", "HEAD"]  # HEAD for link checkers and `curl -I`


@app.middleware("http")
async def security_headers(request, call_next):
    # Every answer, errors and redirects included (a 404 page is HTML on this origin too).
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


@app.api_route("/", methods=READ, response_class=HTMLResponse)
def index():
    items = "".join(f'<li><a href="{n}/">{n}</a></li>' for n in map(html.escape, nights()))
    body = f"<ul>{items}</ul>" if items else f"<p>No reports yet (looked in {html.escape(reports_dir())}).</p>"
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Nightly reports</title></head>"
            f"<body style='font-family: sans-serif; margin: 2em'><h1>Nightly reports</h1>{body}</body></html>")


@app.api_route("/latest", methods=READ)
def latest():
    """The newest night's report: what the UI's navigation entry opens, in one click."""
    found = nights()
    return RedirectResponse(f"{URL_PREFIX}/{found[0]}/" if found else f"{URL_PREFIX}/")


@app.api_route("/{night}", methods=READ)
def night_without_slash(night: str):
    # The page links its images relatively, so it must be served from <night>/.
    if not NIGHT.fullmatch(night):
        raise HTTPException(status_code=404)
    return RedirectResponse(f"{night}/")


@app.api_route("/{night}/", methods=READ)
def night_page(night: str):
    return report_file(night, "index.html")


@app.api_route("/{night}/{name}", methods=READ)
def report_file(night: str, name: str):
    if not NIGHT.fullmatch(night) or not FILE.fullmatch(name):
        raise HTTPException(status_code=404)
    path = os.path.join(reports_dir(), night, name)
    if not os.path.isfile(path):
        raise HTTPException(status_code=404, detail=f"no report file {night}/{name}")
    return FileResponse(path)


class DownlinkReportsPlugin(AirflowPlugin):
    name = "downlink_reports"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Nightly reports"}]
    # Airflow 3 UI: destination "nav" without a category is an entry of its own in the navigation
    # bar (one click, not Browse > ...); url_route shows href inside the UI's page, at
    # /plugin/nightly-reports. It opens the newest report; that page links the others.
    external_views = [{"name": "Nightly reports", "href": f"{URL_PREFIX}/latest", "destination": "nav",
                       "url_route": "nightly-reports"}]
