"""CeleryExecutor with two workers on the real stack: a night's tasks are spread over both, and a
worker killed mid-step leaves the run to finish on the other, with the step's effect happening
once and no duplicate rows."""
import json
import subprocess
import time
import uuid

import pytest
from e2e_base import gate_command, probe_chains, release_gate, wait_for_gate, wait_for_retry_running

NIGHT = "2026-11-24"
PROBE = {
    # A night's chain in miniature, with a heavy step that holds (a gate the test releases) until
    # the retry of its lost worker has found it still running, then has one visible effect.
    "failover_probe": [
        {"name": "fo_download", "command": "downlink download --night {night}"},
        {"name": "fo_archive", "command": "downlink archive --night {night}", "after": "fo_download",
         "writes_archive": True},
        {"name": "fo_index", "command": "downlink index --night {night}", "after": "fo_archive"},
        {"name": "fo_calibrate", "queue": "heavy", "after": "fo_index", "retry_delay": "1s",
         "command": gate_command("fo_calibrate", "mkdir -p {data}/work; echo '{run_id}' >> {data}/work/failover_effects.txt; "
                                                 "downlink calibrate --night {night}")},
    ],
}


@pytest.fixture(scope="module")
def probes(stack):
    with probe_chains(stack, PROBE):
        yield


def workers(stack):
    """{hostname: container id} of the stack's worker containers that are running."""
    ids = subprocess.run(["docker", "ps", "-q", "--no-trunc",
                          "--filter", f"label=com.docker.compose.project={stack.project}",
                          "--filter", "label=com.docker.compose.service=worker"],
                         check=True, capture_output=True, text=True).stdout.split()
    if not ids:
        return {}
    info = json.loads(subprocess.run(["docker", "inspect", *ids], check=True, capture_output=True, text=True).stdout)
    return {c["Config"]["Hostname"]: c["Id"] for c in info}


def night_counts(stack):
    with stack.archive_db() as conn:
        return {table: conn.execute(f"SELECT count(*), count(DISTINCT path) FROM {table} WHERE night = %s",
                                    (NIGHT,)).fetchone()
                for table in ("observations", "reduced_frames", "calibration_masters")}


def test_a_nights_tasks_are_spread_over_both_workers(stack):
    hosts = workers(stack)
    assert len(hosts) == 2, hosts
    run_id = f"e2e_spread_{uuid.uuid4().hex[:6]}"
    assert stack.run_dag("daily_chain", run_id, {"night": NIGHT}, timeout=900) == "success"
    tis = stack.api.task_instances("daily_chain", run_id)
    steps = [t for t in tis if t["task_id"] != "watcher"]
    used = {t["hostname"] for t in steps}
    assert used == set(hosts), {t["task_id"]: t["hostname"] for t in steps}
    by_task = {t["task_id"]: t for t in tis}
    # Heavy steps go to the heavy queue and its pool; the rest to the default queue.
    for task in ("calibrate", "sources"):
        assert (by_task[task]["queue"], by_task[task]["pool"]) == ("heavy", "heavy"), by_task[task]
    assert by_task["download"]["queue"] == "default"
    counts = night_counts(stack)
    assert counts["observations"] == (29, 29), counts
    assert counts["reduced_frames"][0] == counts["reduced_frames"][1] > 0, counts


def test_a_worker_killed_mid_step_the_other_finishes_the_run_once(stack, probes):
    """Injected: the worker running a step killed (SIGKILL) while the step's container works; it
    stays down."""
    from dagrun import trigger as airflow_trigger

    before = night_counts(stack)
    run_id = f"e2e_failover_{uuid.uuid4().hex[:6]}"
    stack.api.wait_for_dag("failover_probe")
    airflow_trigger("failover_probe", run_id, {"night": NIGHT})
    path = f"/api/v2/dags/failover_probe/dagRuns/{run_id}/taskInstances/fo_calibrate"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        ti = stack.api.get(path)
        if ti["state"] == "running" and ti.get("hostname"):
            break
        time.sleep(1)
    assert ti["state"] == "running", ti
    wait_for_gate(stack, run_id, "fo_calibrate")  # the step's container is up and working
    hosts = workers(stack)
    victim = ti["hostname"]
    assert victim in hosts, (victim, hosts)
    subprocess.run(["docker", "kill", hosts[victim]], check=True, capture_output=True)
    # The lost try is noticed after the heartbeat timeout; its retry adopts the running container.
    wait_for_retry_running(stack, path)
    release_gate(stack, run_id, "fo_calibrate")

    assert stack.api.wait_for_run("failover_probe", run_id, timeout=600) == "success"
    assert victim not in workers(stack)  # it stayed down: the survivor did the work
    ti = stack.api.get(path)
    assert ti["try_number"] >= 2, ti  # the first try was lost with its worker
    assert ti["hostname"] != victim and ti["hostname"] in hosts, (ti["hostname"], victim)
    log = stack.task_log("failover_probe", run_id, "fo_calibrate", try_number=ti["try_number"])
    assert "still running (its worker was lost)" in log and "not running the step again" in log, log[-3000:]
    effects = stack.data_file("work/failover_effects.txt").split()
    assert effects.count(run_id) == 1, effects
    # Reprocessing the night through the failover changed no counts: no duplicate rows.
    assert night_counts(stack) == before
