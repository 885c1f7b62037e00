"""The script registry through the real stack: a four-line entry runs in the next run, the team's
example scripts (five languages) run in the chain, a broken entry shows as an import error while
the rest keeps running, and a deploy rolls a new image tag in without cutting a running task.

The stack reads a copy of dags/ (build/e2e-dags), which these tests edit and restore."""
import os
import re
import subprocess
import time
import urllib.error
import uuid

import pytest
import yaml

from conftest import ROOT, gate_command, release_gate, wait_for_gate

DAG = "daily_chain"
SAMPLE_NIGHT = "2026-11-24"
RAW_FILES = 29  # make-night's default night: 5 bias, 6 dark, 6 flat, 12 object
FOUR_LINES = """
  - name: count_raw
    command: "ls {data}/raw/{night} | wc -l"
    after: index
"""


def wait_for(predicate, what, timeout=180, poll=3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(poll)


def dag_tasks(stack, dag_id):
    try:
        return {t["task_id"] for t in stack.api.get(f"/api/v2/dags/{dag_id}/tasks")["tasks"]}
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return set()
        raise


def import_errors(stack):
    return {os.path.basename(e["filename"]): e["stack_trace"]
            for e in stack.api.get("/api/v2/importErrors")["import_errors"]}


def trigger(stack, dag_id, conf=None, wait=True):
    run_id = f"e2e_{dag_id}_{uuid.uuid4().hex[:6]}"
    if wait:
        return run_id, stack.run_dag(dag_id, run_id, conf=conf, timeout=1500)
    stack.api.wait_for_dag(dag_id)
    from dagrun import trigger as airflow_trigger
    airflow_trigger(dag_id, run_id, conf)
    return run_id, None


def ti(stack, dag_id, run_id, task_id):
    return stack.api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")


@pytest.fixture(scope="module")
def registry(stack):
    """The registry the stack reads; restored after the module."""
    with open(stack.registry_path) as fh:
        original = fh.read()
    yield stack.registry_path
    with open(stack.registry_path, "w") as fh:
        fh.write(original)


@pytest.fixture(scope="module")
def run_with_new_entry(stack, registry):
    with open(registry, "a") as fh:
        fh.write(FOUR_LINES)
    wait_for(lambda: "count_raw" in dag_tasks(stack, DAG), "the dag-processor to pick up count_raw")
    run_id, state = trigger(stack, DAG, {"night": SAMPLE_NIGHT})
    return run_id, state, {t["task_id"]: t["state"] for t in stack.api.task_instances(DAG, run_id)}


def test_a_four_line_entry_runs_in_the_next_run(stack, run_with_new_entry):
    run_id, state, states = run_with_new_entry
    assert state == "success", states
    assert states["count_raw"] == "success"
    log = stack.task_log(DAG, run_id, "count_raw")
    assert f"{RAW_FILES}" in log.split(), log[-2000:]


def test_example_scripts_in_five_languages_run_in_the_chain(stack, run_with_new_entry):
    _, _, states = run_with_new_entry
    for task in ("header_summary", "obslog", "fits_verify", "bias_levels", "pixstats"):
        assert states[task] == "success", (task, states)
    products = f"products/{SAMPLE_NIGHT}"
    headers = stack.data_file(f"{products}/header-summary/headers.csv").strip().splitlines()
    assert len(headers) == RAW_FILES + 1  # a header line, then one row per raw file
    biases = [line for line in stack.data_file(f"{products}/bias-levels/imstat.txt").splitlines()
              if line.strip() and not line.startswith("#")]
    assert len(biases) == 5
    verify = stack.data_file(f"{products}/fits-verify/report.txt")
    assert verify.count("OK") >= RAW_FILES and "FAIL" not in verify
    pixstats = stack.data_file(f"{products}/pixstats/pixstats.csv").strip().splitlines()
    assert len(pixstats) == 12 + 1
    obslog = stack.data_file(f"{products}/obslog/obslog.txt")
    assert all(target in obslog for target in ("M31", "NGC 891", "M1"))


def test_a_broken_entry_is_an_import_error_and_the_rest_keeps_running(stack, registry, run_with_new_entry):
    with open(registry) as fh:
        good = fh.read()
    broken = good + """
  - name: typo_script
    command: header-summary --night {night}
    after: indx
  - name: needs_typo
    command: echo never
    after: typo_script
  - name: wrong_field
    command: echo x
    retires: 3
"""
    with open(registry, "w") as fh:
        fh.write(broken)
    try:
        errors = wait_for(lambda: import_errors(stack).get("registry_check.py"), "registry_check.py's import error")
        assert re.search(r"scripts\[\d+\] 'typo_script': after: unknown script 'indx' \(did you mean 'index'\?\)", errors), errors
        assert "'needs_typo': after: left out because 'typo_script' has a problem" in errors
        assert "'wrong_field': retires: unknown field (did you mean 'retries'?)" in errors
        # The chain is still there, with every good entry, and still runs.
        tasks = dag_tasks(stack, DAG)
        assert {"download", "index", "report", "count_raw", "header_summary"} <= tasks
        assert not tasks & {"typo_script", "needs_typo", "wrong_field"}
        assert not stack.api.get(f"/api/v2/dags/{DAG}")["is_stale"]
        assert "registry_chains.py" not in import_errors(stack)
    finally:
        with open(registry, "w") as fh:
            fh.write(good)
    wait_for(lambda: "registry_check.py" not in import_errors(stack), "the import error to clear")


def test_make_check_names_each_problem(tmp_path):
    """The same check before a deploy, from the command line (as `make check` runs it)."""
    bad = tmp_path / "registry.yaml"
    with open(os.path.join(ROOT, "dags", "registry.yaml")) as fh:
        bad.write_text(fh.read() + "\n  - name: loop_a\n    command: a\n    after: loop_b\n"
                       "  - name: loop_b\n    command: b\n    after: loop_a\n")
    os.chmod(tmp_path, 0o755)  # the Airflow image runs as its own user
    bad.chmod(0o644)
    tag = subprocess.run([os.path.join(ROOT, "tools", "image-tag.sh")], capture_output=True, text=True).stdout.strip()
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none",
         "-v", f"{ROOT}/plugins:/opt/airflow/plugins:ro", "-v", f"{tmp_path}:/reg:ro",
         f"downlink/airflow:{tag}", "python", "-m", "downlink_airflow.cli", "check", "/reg/registry.yaml"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "after: cycle: loop_a -> loop_b -> loop_a" in result.stderr, result.stderr


def test_deploy_rolls_a_new_tag_in_without_cutting_a_running_task(stack, registry, run_with_new_entry):
    data = yaml.safe_load(open(registry))
    data["chains"]["deploy_probe"] = {"schedule": None, "description": "e2e: deploy while running"}
    data["scripts"].append({"name": "slow", "chain": "deploy_probe", "command": gate_command("slow"), "retries": 0})
    with open(registry, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    new_tag = f"{stack.tag}-e2edeploy"
    env = {**stack.env, "DOWNLINK_TAG": stack.tag}
    try:
        wait_for(lambda: "slow" in dag_tasks(stack, "deploy_probe"), "deploy_probe to be parsed")
        first, _ = trigger(stack, "deploy_probe", wait=False)
        wait_for_gate(stack, first, "slow")  # its container is up and holding
        subprocess.run(["docker", "tag", f"downlink/astro:{stack.tag}", f"downlink/astro:{new_tag}"], check=True)
        deployed = subprocess.run([os.path.join(ROOT, "tools", "deploy.sh"), new_tag], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=300)
        assert deployed.returncode == 0, deployed.stderr
        assert ti(stack, "deploy_probe", first, "slow")["state"] == "running"  # not cut by the deploy
        release_gate(stack, first, "slow")
        assert stack.api.wait_for_run("deploy_probe", first, timeout=300) == "success"
        assert ti(stack, "deploy_probe", first, "slow")["rendered_fields"]["image"] == f"downlink/astro:{stack.tag}"
        second, _ = trigger(stack, "deploy_probe", wait=False)
        wait_for_gate(stack, second, "slow")
        release_gate(stack, second, "slow")
        state = stack.api.wait_for_run("deploy_probe", second, timeout=300)
        assert state == "success"
        assert ti(stack, "deploy_probe", second, "slow")["rendered_fields"]["image"] == f"downlink/astro:{new_tag}"
    finally:
        subprocess.run([os.path.join(ROOT, "tools", "deploy.sh"), stack.tag], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
        subprocess.run(["docker", "rmi", f"downlink/astro:{new_tag}"], capture_output=True)
