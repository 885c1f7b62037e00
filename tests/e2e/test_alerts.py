"""Mail through the real SMTP server in the stack (MailDev): one mail per step that fails for
good, with its exit code and output; none for a success; a warning for stderr when asked; and a
diagnostics breach that says which threshold was crossed."""
import json
import subprocess
import time
import uuid

import pytest

from conftest import probe_chains

PROBES = {
    "alert_probe": [
        {"name": "fails_on_purpose", "command": "echo 'checking frame 17'; echo 'frame 17: saturated, giving up' >&2; exit 3",
         "retries": 1, "retry_delay": "1s", "email": ["ops@example.org"]},
        {"name": "fine", "command": "echo all good"},
    ],
    "quiet_probe": [
        {"name": "quiet", "command": "echo nothing to report", "email": ["ops@example.org"]},
        {"name": "chatty", "command": "echo 'WARNING: 3 frames near saturation' >&2; echo done",
         "warn_on_stderr": True, "email": ["ops@example.org"], "after": "quiet"},
    ],
}


def mails_about(stack, text):
    return [m for m in stack.mails() if text in m["subject"]]


def wait_for_mails(stack, text, count, timeout=120, settle=20):
    """Wait until `count` mails about `text` arrived, then a little longer to catch any extra one."""
    deadline = time.monotonic() + timeout
    while len(mails_about(stack, text)) < count and time.monotonic() < deadline:
        time.sleep(2)
    time.sleep(settle)
    return mails_about(stack, text)


def trigger(stack, dag_id, conf=None):
    run_id = f"e2e_{dag_id}_{uuid.uuid4().hex[:6]}"
    return run_id, stack.run_dag(dag_id, run_id, conf=conf, timeout=600)


@pytest.fixture(scope="module")
def probes(stack):
    with probe_chains(stack, PROBES):
        yield


def test_diagnostics_on_a_healthy_stack_pass_and_mail_nobody(stack):
    run_id, state = trigger(stack, "diagnostics")
    assert state == "success", stack.api.task_instances("diagnostics", run_id)
    log = stack.task_log("diagnostics", run_id, "storage_and_data")
    assert "disk_space:data" in log and "disk_space:database" in log and "database" in log
    # The database's volume is measured by the postgres service, not mounted in the step.
    assert "database volume: " in log and "/var/lib/postgresql/data (in the postgres service)" in log, log
    assert mails_about(stack, "diagnostics") == []


def test_a_step_that_fails_for_good_mails_once_with_its_exit_code_and_output(stack, probes):
    run_id, state = trigger(stack, "alert_probe")
    assert state == "failed"
    states = {t["task_id"]: t["state"] for t in stack.api.task_instances("alert_probe", run_id)}
    assert states["fails_on_purpose"] == "failed" and states["fine"] == "success"
    mails = wait_for_mails(stack, "alert_probe", 1)
    assert len(mails) == 1, [m["subject"] for m in mails]  # one mail, not one per try, none for fine/watcher
    mail = mails[0]
    assert mail["subject"].startswith("[Downlink] FAILED alert_probe.fails_on_purpose night ")
    assert mail["subject"].endswith("(exit 3)")
    assert [t["address"] for t in mail["to"]] == ["ops@example.org"]
    body = mail["html"]
    for fact in ("frame 17: saturated, giving up", "checking frame 17", "2 of 2", run_id,
                 f"/dags/alert_probe/runs/{run_id}/tasks/fails_on_purpose"):
        assert fact in body, fact


def test_a_successful_step_mails_nobody_unless_it_asks_for_stderr_warnings(stack, probes):
    run_id, state = trigger(stack, "quiet_probe")
    assert state == "success"
    mails = wait_for_mails(stack, "quiet_probe", 1)
    assert [m["subject"].split(" night ")[0] for m in mails] == ["[Downlink] WARNING quiet_probe.chatty"]
    assert "WARNING: 3 frames near saturation" in mails[0]["html"]


def test_a_diagnostics_breach_mails_what_is_wrong_and_the_threshold(stack, probes):
    before = len(mails_about(stack, "diagnostics.storage_and_data"))
    run_id, state = trigger(stack, "diagnostics", conf={"min_free_gb": 1000000})
    assert state == "failed"
    mails = wait_for_mails(stack, "diagnostics.storage_and_data", before + 1)
    assert len(mails) == before + 1
    body = mails[-1]["html"]
    assert "below DOWNLINK_MIN_FREE_GB=1000000" in body and "data volume" in body, body
    assert "database volume: " in body and body.count("below DOWNLINK_MIN_FREE_GB=1000000") >= 2, body
    # The same run's Airflow-side check reports the probe's failed run, once.
    airflow_side = mails_about(stack, "diagnostics.airflow_and_images")
    assert len(airflow_side) == 1 and "alert_probe" in airflow_side[0]["html"]


def pgdata_volume(stack):
    return f"{stack.project}_pgdata"


def test_no_step_container_mounts_the_database_volume(stack):
    """Diagnostics measure the database's space without its volume: during a run the engine
    mounts that volume into no container, and the proxy refuses a step that asks for it."""
    since = subprocess.run(["date", "+%s"], capture_output=True, text=True, check=True).stdout.strip()
    run_id, _ = trigger(stack, "diagnostics")
    # The step that measures the space (airflow_and_images may fail here: the probes' runs failed).
    states = {t["task_id"]: t["state"] for t in stack.api.task_instances("diagnostics", run_id)}
    assert states["storage_and_data"] == "success", states
    until = subprocess.run(["date", "+%s"], capture_output=True, text=True, check=True).stdout.strip()
    events = subprocess.run(["docker", "events", "--since", since, "--until", until, "--filter", "type=volume",
                             "--filter", "event=mount", "--format", "{{json .}}"],
                            capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    mounted = [json.loads(e)["Actor"] for e in events]
    steps = [a for a in mounted if a["Attributes"].get("container")]
    assert steps, "no volume mount events seen: the check would prove nothing"  # the step mounts the data volume
    assert [a for a in mounted if a["ID"] == pgdata_volume(stack)] == [], mounted
    # The same request with the data volume passes: the refusal is about the database's volume.
    out = stack.compose("exec", "-T", "scheduler", "python", "-c", MOUNT_PGDATA, f"downlink/astro:{stack.tag}",
                        f"{stack.project}-net", f"{stack.project}-data", pgdata_volume(stack), check=False).stdout
    assert f"{stack.project}-data ALLOWED" in out, out
    refusal = next((line for line in out.splitlines() if line.startswith(pgdata_volume(stack))), "")
    assert " refused 403 " in refusal and "volume" in refusal.lower(), out


MOUNT_PGDATA = r"""
import sys
import docker
from docker.types import Mount
image, network = sys.argv[1:3]
client = docker.DockerClient(base_url="tcp://docker-proxy:2375", timeout=10)
for volume in sys.argv[3:]:
    try:
        client.containers.run(image, "true", remove=True, mem_limit="256m", pids_limit=64, user="1000:1000",
                              network=network, mounts=[Mount(target="/mnt/v", source=volume, type="volume", read_only=True)])
        print(volume, "ALLOWED")
    except docker.errors.APIError as exc:
        print(volume, "refused", exc.response.status_code, exc.explanation)
"""


def test_only_the_archive_role_may_measure_the_database_volume(stack):
    with stack.archive_db() as conn:
        total, free, mount_point = conn.execute(
            "SELECT total_bytes, free_bytes, mount_point FROM downlink_ops.data_volume_space()").fetchone()
    assert total > free > 0 and mount_point == "/var/lib/postgresql/data"
    # What the engine says of that volume's file system, from inside the postgres service.
    df = stack.compose("exec", "-T", "postgres", "df", "-Pk", "/var/lib/postgresql/data").stdout.splitlines()[-1].split()
    assert int(df[1]) * 1024 == total
    refused = stack.compose("exec", "-T", "postgres", "psql", "-U", "airflow", "-d", "archive", "-c",
                            "SELECT * FROM downlink_ops.data_volume_space()", check=False)
    assert refused.returncode != 0 and "permission denied" in refused.stderr, refused
