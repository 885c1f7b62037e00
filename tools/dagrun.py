#!/usr/bin/env python3
"""Trigger a DAG in the running Downlink stack with `airflow dags trigger`, and wait for the run.

Usage: tools/dagrun.py DAG_ID [--conf JSON] [--run-id ID] [--timeout SECONDS]
Exit codes: 0 the run succeeded; 1 it failed (task states are printed); 2 timeout or bad usage.
Standard library only, so `make up` needs nothing installed on the host.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINISHED = {"success", "failed"}
SAMPLE_NIGHT = "2026-11-24"


def read_dotenv(path=None):
    path = path or os.path.join(ROOT, ".env")
    values = {}
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, value = line.split("=", 1)
                    values[key] = value
    return values


def setting(name, default=None):
    """Environment first (as docker compose does), then .env, then the default."""
    return os.environ.get(name) or read_dotenv().get(name) or default


class AirflowAPI:
    """The stack's REST API (/api/v2), authenticated with a JWT from /auth/token."""

    def __init__(self, base_url=None, user=None, password=None):
        self.base_url = base_url or f"http://127.0.0.1:{setting('DOWNLINK_WEB_PORT', '8080')}"
        self.user = user or setting("DOWNLINK_ADMIN_USER", "admin")
        self.password = password or setting("DOWNLINK_ADMIN_PASSWORD")
        self._token = None

    def _request(self, method, path, body=None, auth=True):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def token(self):
        if self._token is None:
            reply = self._request("POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False)
            self._token = reply["access_token"]
        return self._token

    def get(self, path):
        return self._request("GET", path)

    def patch(self, path, body):
        return self._request("PATCH", path, body)

    def post(self, path, body):
        return self._request("POST", path, body)

    def wait_for_dag(self, dag_id, timeout=180):
        """Wait until the dag-processor has parsed dag_id, and make sure it is not paused."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                dag = self.get(f"/api/v2/dags/{dag_id}")
                if dag.get("is_paused"):
                    self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return dag
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(3)

    def run(self, dag_id, run_id):
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id, run_id):
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def wait_for_run(self, dag_id, run_id, timeout=1800, poll=3):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = self.run(dag_id, run_id)["state"]
            except (TimeoutError, ConnectionError, urllib.error.URLError) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code < 500:
                    raise
                # A busy machine or a restarting api-server: a missed poll is not a result.
                print(f"dagrun: polling {dag_id} {run_id}: {exc}; trying again", file=sys.stderr)
                state = None
            if state in FINISHED:
                return state
            time.sleep(poll)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout} s")


def compose_exec(*args):
    """Run a command in the scheduler container (the project is taken from the environment/.env)."""
    cmd = ["docker", "compose", "--project-directory", ROOT, "exec", "-T", "scheduler", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def trigger(dag_id, run_id, conf=None):
    args = ["airflow", "dags", "trigger", dag_id, "--run-id", run_id]
    if conf:
        args += ["--conf", json.dumps(conf)]
    return compose_exec(*args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dag_id")
    parser.add_argument("--conf", type=json.loads, help="run configuration, as JSON")
    parser.add_argument("--sample-night", action="store_true",
                        help="process the bundled sample night (DOWNLINK_SAMPLE_NIGHT, default 2026-11-24)")
    parser.add_argument("--run-id", help="default: manual__<UTC time>")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    run_id = args.run_id or "manual__" + datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if args.sample_night:
        args.conf = {**(args.conf or {}), "night": setting("DOWNLINK_SAMPLE_NIGHT", SAMPLE_NIGHT)}
    api = AirflowAPI()
    api.wait_for_dag(args.dag_id)
    start = time.monotonic()
    trigger(args.dag_id, run_id, args.conf)
    print(f"triggered {args.dag_id} run {run_id}; waiting ...", flush=True)
    try:
        state = api.wait_for_run(args.dag_id, run_id, timeout=args.timeout)
    except TimeoutError as exc:
        print(exc, file=sys.stderr)
        return 2
    run = api.run(args.dag_id, run_id)
    wall = ""
    if run.get("start_date") and run.get("end_date"):
        began, ended = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
        wall = f" (the run itself: {(ended - began).total_seconds():.0f} s)"
    print(f"{args.dag_id} run {run_id}: {state} {time.monotonic() - start:.0f} s after the trigger{wall}")
    for ti in api.task_instances(args.dag_id, run_id):
        print(f"  {ti['task_id']:<24} {ti['state']}")
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
