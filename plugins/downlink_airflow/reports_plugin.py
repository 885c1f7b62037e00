"""The nightly reports in the Airflow UI: a read-only file server mounted by the api-server at
/reports/ (a list of nights, then each night's index.html and its images), and a "Nightly
reports" entry in the UI's navigation. The reports come from the data volume, which is mounted
read-only into the api-server at DOWNLINK_REPORTS_DIR."""
import html
import os
import re

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from airflow.plugins_manager import AirflowPlugin

NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FILE = re.compile(r"^[A-Za-z0-9_.-]+\.(html|png|json)$")


def reports_dir():
    return os.environ.get("DOWNLINK_REPORTS_DIR", "/data/reports")


def nights():
    root = reports_dir()
    if not os.path.isdir(root):
        return []
    return sorted((n for n in os.listdir(root) if NIGHT.match(n) and os.path.isfile(os.path.join(root, n, "index.html"))),
                  reverse=True)


app = FastAPI(title="Downlink nightly reports")


@app.get("/", response_class=HTMLResponse)
def index():
    items = "".join(f'<li><a href="{n}/">{n}</a></li>' for n in map(html.escape, nights())) or "<li>no reports yet</li>"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Nightly reports</title></head>" \
           f"<body style='font-family: sans-serif'><h1>Nightly reports</h1><ul>{items}</ul></body></html>"


@app.get("/{night}")
def night_without_slash(night: str):
    return RedirectResponse(f"{night}/")


@app.get("/{night}/")
def night_page(night: str):
    return report_file(night, "index.html")


@app.get("/{night}/{name}")
def report_file(night: str, name: str):
    # Only a night's own files, by exact pattern: nothing else on the volume can be reached.
    if not NIGHT.match(night) or not FILE.match(name):
        raise HTTPException(status_code=404)
    path = os.path.join(reports_dir(), night, name)
    if not os.path.isfile(path):
        raise HTTPException(status_code=404, detail=f"no report file {night}/{name}")
    return FileResponse(path)


class DownlinkReportsPlugin(AirflowPlugin):
    name = "downlink_reports"
    fastapi_apps = [{"app": app, "url_prefix": "/reports", "name": "Nightly reports"}]
    external_views = [{"name": "Nightly reports", "href": "/reports/", "destination": "nav",
                       "category": "browse", "url_route": "nightly-reports"}]
