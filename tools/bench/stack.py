"""A whole Downlink stack for one benchmark: its own compose project (downlink-bench-<name>), its
own ports and its own generated secrets (build/bench-<name>.env, never the user's .env), torn
down with its volumes at the end, also on Ctrl-C or SIGTERM. Also the contract's result file."""
import argparse
import atexit
import datetime
import functools
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

import dagrun  # noqa: E402
from benchlib import write_result  # noqa: E402,F401  (the contract's result file, one writer for all benchmarks)


@functools.lru_cache(maxsize=None)
def image_tag():
    """This tree's tag, read once: an edit during a long run must not change it half-way."""
    return os.environ.get("DOWNLINK_TAG") or subprocess.check_output(
        [os.path.join(ROOT, "tools", "image-tag.sh")], text=True).strip()


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "bench"), help="where <name>.json goes")
    p.add_argument("--env", action="append", default=[], metavar="VAR=VALUE",
                   help="extra setting for the benchmark's stack (to compare tunings)")
    args = p.parse_args()
    args.env = dict(kv.split("=", 1) for kv in args.env)
    return args


def median(values):
    return statistics.median(values) if values else float("nan")


def iso_seconds(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def free_port():
    """A loopback port nobody listens on now (other people's stacks share this engine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchStack:
    """`with BenchStack("latency") as s:` brings the stack up; leaving tears it down. Ports are
    free ones picked at start unless given."""

    def __init__(self, name, web_port=None, mail_port=None, db_port=None, env=None, dags_dir=None, build=True):
        web_port, mail_port, db_port = (p or free_port() for p in (web_port, mail_port, db_port))
        self.name = name
        self.project = f"downlink-bench-{name}"
        self.tag = image_tag()
        if build:  # this tree's images (the layer cache makes it quick when they exist)
            subprocess.run([os.path.join(ROOT, "tools", "build-images.sh"), self.tag], cwd=ROOT, check=True,
                           capture_output=True)
        self.env_file = os.path.join(ROOT, "build", f"bench-{name}.env")
        os.makedirs(os.path.dirname(self.env_file), exist_ok=True)
        subprocess.run([os.path.join(ROOT, "tools", "make-env.sh"), self.tag], check=True, capture_output=True,
                       env={**os.environ, "DOWNLINK_ENV_FILE": self.env_file})
        self.settings = dagrun.read_dotenv(self.env_file)
        self.env = {**os.environ, **self.settings, "DOWNLINK_TAG": self.tag, "DOWNLINK_PROJECT": self.project,
                    "DOWNLINK_WEB_PORT": str(web_port), "DOWNLINK_MAIL_PORT": str(mail_port),
                    "DOWNLINK_DB_PORT": str(db_port), **(env or {})}
        if dags_dir:
            self.env["DOWNLINK_DAGS_DIR"] = dags_dir
        self.db_port = db_port
        self.api = dagrun.AirflowAPI(base_url=f"http://127.0.0.1:{web_port}", user="admin",
                                     password=self.settings["DOWNLINK_ADMIN_PASSWORD"])
        self._torn_down = False

    # --- lifecycle ---------------------------------------------------------------------------
    def compose(self, *args, check=True, timeout=900):
        res = subprocess.run(["docker", "compose", "--env-file", self.env_file, *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{res.stderr[-4000:]}")
        return res

    def up(self):
        res = self.compose("up", "-d", "--wait", "--remove-orphans", check=False)
        if res.returncode != 0:
            logs = self.compose("logs", "--tail=40", check=False).stdout
            raise RuntimeError(f"{self.project} did not come up:\n{res.stderr[-3000:]}\n{logs[-6000:]}")

    def down(self):
        self.compose("down", "--volumes", "--remove-orphans", check=False)

    def guard(self):
        """Tear the stack down at exit, also on Ctrl-C or SIGTERM."""
        atexit.register(self._teardown)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        return self

    def __enter__(self):
        self.guard()
        self.down()  # a previous run killed mid-way leaves nothing behind
        self.up()
        return self

    def __exit__(self, *exc):
        self._teardown()

    def _on_signal(self, signum, _frame):
        self._teardown()
        sys.exit(128 + signum)

    def _teardown(self):
        if not self._torn_down and not os.environ.get("DOWNLINK_BENCH_KEEP"):
            self._torn_down = True
            self.down()

    # --- using it ----------------------------------------------------------------------------
    def archive_db(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.db_port, dbname="archive", user="archive",
                               password=self.settings["ARCHIVE_DB_PASSWORD"], connect_timeout=10, autocommit=True)

    def retry(self, call, timeout=180):
        """A REST call, tried again while the API server is too busy to answer (2 shared cores)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return call()
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code not in (502, 503, 504):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def trigger(self, dag_id, run_id, conf=None):
        """Trigger through the REST API (no CLI start-up in the measurement); returns the host time."""
        self.retry(lambda: self.api.wait_for_dag(dag_id, timeout=300))
        t0 = time.time()
        self.api._request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                          {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}})
        return t0

    def wait(self, dag_id, run_id, timeout=1800, poll=0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                run = self.api.run(dag_id, run_id)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError):
                run = {}
            if run.get("state") in ("success", "failed"):
                return run
            time.sleep(poll)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout} s")

    def run_dag(self, dag_id, run_id, conf=None, timeout=1800):
        """(trigger time, final run) of one run triggered now."""
        t0 = self.trigger(dag_id, run_id, conf)
        return t0, self.wait(dag_id, run_id, timeout)

    def wait_quiet(self, timeout=300):
        """Until the arrivals DAG exists and has no queued or running run: the start-up run on the
        sample night (when it is one of the watched nights) must not share the measurements."""
        self.retry(lambda: self.api.wait_for_dag("arrivals", timeout=timeout))
        deadline, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < deadline and quiet < 3:
            runs = self.retry(lambda: self.api.get("/api/v2/dags/arrivals/dagRuns?state=queued&state=running"))["dag_runs"]
            quiet = quiet + 1 if not runs else 0
            time.sleep(2)
