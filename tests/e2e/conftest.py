"""End-to-end fixtures: one real Downlink stack for the whole e2e session.

It runs as its own compose project (default `downlink-test`, other ports), so it never touches a
stack brought up with `make up`. It is torn down with its volumes at the end, even on failure;
set DOWNLINK_E2E_KEEP=1 to leave it running for a post-mortem.
"""
import contextlib
import json
import os
import shutil
import subprocess
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dagrun  # noqa: E402

# DOWNLINK_E2E_SMALL_DATA=0: the data volume is an ordinary named volume, not the small tmpfs the
# host mounts (which needs root; tests/e2e_podman does not fill the disk).
SMALL_DATA = os.environ.get("DOWNLINK_E2E_SMALL_DATA", "1") != "0"
TEST_ENV = {
    "DOWNLINK_PROJECT": os.environ.get("DOWNLINK_E2E_PROJECT", "downlink-test"),
    "DOWNLINK_WEB_PORT": os.environ.get("DOWNLINK_E2E_WEB_PORT", "18080"),
    "DOWNLINK_MAIL_PORT": os.environ.get("DOWNLINK_E2E_MAIL_PORT", "11080"),
    "DOWNLINK_DB_PORT": os.environ.get("DOWNLINK_E2E_DB_PORT", "15433"),
    # New DAG files must show up quickly in tests.
    "DOWNLINK_DAG_REFRESH_SECONDS": "10",
    # A lost worker's task is retried sooner (the scheduler-kill test).
    "DOWNLINK_TASK_HEARTBEAT_TIMEOUT": "60",
    # A copy of dags/ that tests may edit (the registry tests add and break entries).
    "DOWNLINK_DAGS_DIR": os.path.join(ROOT, "build", "e2e-dags-" + os.environ.get("DOWNLINK_E2E_PROJECT", "downlink-test")),
    # The data volume is a small tmpfs (compose.small-data.yaml) that a test can fill; the
    # CeleryExecutor's override too for tests/e2e_celery. Set here, whatever the developer's .env chose.
    "COMPOSE_FILE": os.pathsep.join([os.path.join(ROOT, "docker-compose.yaml")]
                                    + ([os.path.join(ROOT, "docker-compose.celery.yaml")]
                                       if os.environ.get("DOWNLINK_E2E_CELERY") else [])
                                    + ([os.path.join(ROOT, "tests", "e2e", "compose.small-data.yaml")] if SMALL_DATA else [])),
    "DOWNLINK_E2E_DATA_DIR": os.path.join(ROOT, "build", "e2e-data-" + os.environ.get("DOWNLINK_E2E_PROJECT", "downlink-test")),
    # The free-space check is scaled to that volume.
    "DOWNLINK_MIN_FREE_GB": "0.05",
    # A trickling transfer is given up on after 5 s below the minimum rate (the trickle test).
    "DOWNLINK_TRANSFER_GRACE_SECONDS": "5",
}
DATA_SIZE = "256m"
# The generated sample night (downlink make-night; the archive-server's seed).
SAMPLE_NIGHT = "2026-11-24"


def mount_data_volume():
    """A fresh tmpfs of DATA_SIZE under the e2e data volume."""
    if not SMALL_DATA:
        return
    target = TEST_ENV["DOWNLINK_E2E_DATA_DIR"]
    unmount_data_volume()
    os.makedirs(target, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DATA_SIZE},mode=0755", "downlink-e2e-data", target],
                   check=True, capture_output=True, text=True)


def unmount_data_volume():
    if not SMALL_DATA:
        return
    target = TEST_ENV["DOWNLINK_E2E_DATA_DIR"]
    while os.path.ismount(target):
        subprocess.run(["umount", target], check=True, capture_output=True, text=True)


def copy_dags():
    target = TEST_ENV["DOWNLINK_DAGS_DIR"]
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "dags"), target, ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(target, 0o755)


class Stack:
    def __init__(self):
        self.env = {**os.environ, **TEST_ENV}
        self.project = TEST_ENV["DOWNLINK_PROJECT"]
        self.tag = dagrun.setting("DOWNLINK_TAG")
        self.api = dagrun.AirflowAPI()
        self.web_url = self.api.base_url
        self.mail_url = f"http://127.0.0.1:{TEST_ENV['DOWNLINK_MAIL_PORT']}"

    def compose(self, *args, check=True, timeout=900):
        return subprocess.run(["docker", "compose", *args], cwd=ROOT, env=self.env, check=check,
                              capture_output=True, text=True, timeout=timeout)

    def up(self):
        result = self.compose("up", "-d", "--wait", "--remove-orphans", check=False)
        if result.returncode != 0:
            logs = self.compose("logs", "--tail=60", check=False).stdout
            raise RuntimeError(f"stack did not come up:\n{result.stderr}\n{logs[-8000:]}")

    def down(self):
        self.compose("down", "--volumes", "--remove-orphans", check=False)

    def services(self):
        out = self.compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(rows) == 1 and isinstance(rows[0], list):
            rows = rows[0]
        return {row["Service"]: row for row in rows}

    def archive_db(self):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=int(TEST_ENV["DOWNLINK_DB_PORT"]), dbname="archive", user="archive",
            password=dagrun.setting("ARCHIVE_DB_PASSWORD"), connect_timeout=10, autocommit=True,
        )

    def run_dag(self, dag_id, run_id, conf=None, timeout=900):
        """Trigger with `airflow dags trigger` (as a user would) and wait; returns the final state."""
        self.api.wait_for_dag(dag_id)
        dagrun.trigger(dag_id, run_id, conf)
        return self.api.wait_for_run(dag_id, run_id, timeout=timeout)

    def task_log(self, dag_id, run_id, task_id, try_number=1):
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        content = self.api.get(path)["content"]
        return "\n".join(part.get("event", "") if isinstance(part, dict) else str(part) for part in content)

    def mails(self):
        """Every mail the stack's SMTP server (MailDev) has received, newest last."""
        with urllib.request.urlopen(self.mail_url + "/email", timeout=30) as resp:
            return json.loads(resp.read())

    @property
    def registry_path(self):
        return os.path.join(TEST_ENV["DOWNLINK_DAGS_DIR"], "registry.yaml")

    def data_file(self, path):
        """A file's text from the stack's data volume (as a step would see it under /data)."""
        return self.on_data("cat", f"/data/{path}")

    def on_data(self, *command, user=None):
        """A command's output in the astro image with the data volume at /data and the archive
        volume at /data/raw, both read-only unless `user` is given (then writable, as that user)."""
        mode = "" if user else ":ro"
        return subprocess.run(["docker", "run", "--rm", *(["-u", user] if user else []),
                               "-v", f"{self.project}-data:/data{mode}", "-v", f"{self.project}-raw:/data/raw{mode}",
                               f"downlink/astro:{self.tag}", *command],
                              check=True, capture_output=True, text=True, timeout=120).stdout

    def astro(self, *command):
        """Run a command in the deployed astro image, outside Airflow (as a developer would)."""
        return subprocess.run(["docker", "run", "--rm", f"downlink/astro:{self.tag}", *command],
                              check=True, capture_output=True, text=True, timeout=300).stdout


# A step that holds until the test releases it: it marks that it started, then waits (up to
# 10 min) for the release file, so tests wait on events instead of sleeping a guessed time.
GATE_COMMAND = ("mkdir -p {data}/work/gates && touch {data}/work/gates/{run_id}.{name}.started && i=0; "
                "while [ ! -e {data}/work/gates/{run_id}.{name}.release ] && [ $i -lt 1200 ]; "
                "do sleep 0.5; i=$((i + 1)); done; ")


def gate_command(name, then="echo released"):
    return GATE_COMMAND.replace("{name}", name) + then


def wait_for_gate(stack, run_id, name, timeout=300):
    """Until the gated step of `run_id` has started (its container is up and running the command)."""
    import time

    deadline = time.monotonic() + timeout
    while stack.on_data("sh", "-c", f"test -e /data/work/gates/{run_id}.{name}.started && echo yes || true").strip() != "yes":
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {name} of {run_id} did not start within {timeout} s")
        time.sleep(1)


def wait_for_retry_running(stack, ti_path, timeout=600):
    """Until the task instance at `ti_path` runs a second (or later) try: the retry of a lost try."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        ti = stack.api.get(ti_path)
        if ti["try_number"] >= 2 and ti["state"] == "running":
            return ti
        assert time.monotonic() < deadline, f"no retry running within {timeout} s: {ti}"
        time.sleep(2)


def release_gate(stack, run_id, name):
    stack.on_data("touch", f"/data/work/gates/{run_id}.{name}.release", user="0:0")


@contextlib.contextmanager
def probe_chains(stack, probes):
    """Manual chains ({chain: [entries]}) added to the stack's registry while a test module runs,
    then removed; waits until the dag-processor has them."""
    import yaml

    with open(stack.registry_path) as fh:
        original = fh.read()
    data = yaml.safe_load(original)
    for chain, scripts in probes.items():
        data["chains"][chain] = {"schedule": None, "description": f"e2e: {chain}"}
        data["scripts"] += [{**s, "chain": chain} for s in scripts]
    with open(stack.registry_path, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    try:
        for chain in probes:
            stack.api.wait_for_dag(chain, timeout=240)
        yield
    finally:
        with open(stack.registry_path, "w") as fh:
            fh.write(original)


@pytest.fixture(scope="session")
def sample_night(stack):
    """daily_chain run once on the sample night, whatever ran before: (run_id, state, {task: state}).

    Modules that assert on the sample night's rows depend on this rather than on what an earlier
    module (or the arrivals watcher, which follows the current nights) happened to leave."""
    import uuid

    run_id = f"e2e_{SAMPLE_NIGHT}_{uuid.uuid4().hex[:6]}"
    state = stack.run_dag("daily_chain", run_id, conf={"night": SAMPLE_NIGHT}, timeout=1500)
    states = {ti["task_id"]: ti["state"] for ti in stack.api.task_instances("daily_chain", run_id)}
    return run_id, state, states


@pytest.fixture(scope="session")
def stack():
    os.environ.update(TEST_ENV)  # dagrun's helpers read the project and ports from here
    s = Stack()
    s.down()  # a previous run killed mid-way must not leave state behind
    copy_dags()
    mount_data_volume()
    try:
        s.up()
        yield s
    finally:
        if not os.environ.get("DOWNLINK_E2E_KEEP"):
            s.down()
            unmount_data_volume()
