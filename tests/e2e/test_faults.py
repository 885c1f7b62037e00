"""Faults the chain must survive, injected into the real stack. Each test says what it injects
and checks the state afterwards."""
import uuid

import pytest
import yaml

from test_alerts import mails_about, wait_for_mails

ALLOCATE = "python3 -c \"x = bytearray({mb} * 1024 * 1024); print('allocated {mb} MB')\""
PROBE = {
    "oom_probe": [
        # Needs ~160 MB: killed at 64m and 128m, fits at 256m.
        {"name": "grows", "command": ALLOCATE.format(mb=150), "memory": "64m", "memory_max": "256m",
         "email": ["ops@example.org"]},
        # Needs ~410 MB, the ceiling is 128m: out of memory for good.
        {"name": "too_big", "command": ALLOCATE.format(mb=400), "memory": "64m", "memory_max": "128m",
         "retries": 2, "email": ["ops@example.org"]},
    ],
}


@pytest.fixture(scope="module")
def probes(stack):
    with open(stack.registry_path) as fh:
        original = fh.read()
    data = yaml.safe_load(original)
    for chain, scripts in PROBE.items():
        data["chains"][chain] = {"schedule": None, "description": f"e2e: {chain}"}
        data["scripts"] += [{**s, "chain": chain} for s in scripts]
    with open(stack.registry_path, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    for chain in PROBE:
        stack.api.wait_for_dag(chain, timeout=240)
    yield
    with open(stack.registry_path, "w") as fh:
        fh.write(original)


def test_out_of_memory_is_named_rerun_one_rung_up_and_mailed_at_the_ceiling(stack, probes):
    """Injected: steps whose memory limit is too small (64m) for what they allocate."""
    run_id = f"e2e_oom_{uuid.uuid4().hex[:6]}"
    assert stack.run_dag("oom_probe", run_id, timeout=600) == "failed"
    tis = {t["task_id"]: t for t in stack.api.task_instances("oom_probe", run_id)}
    assert tis["grows"]["state"] == "success" and tis["grows"]["try_number"] == 1
    log = stack.task_log("oom_probe", run_id, "grows")
    assert "out of memory at 64m: running the step again with 128m" in log
    assert "out of memory at 128m: running the step again with 256m" in log and "allocated 150 MB" in log
    # At the ceiling: failed at once (no Airflow retry can make it fit), and one mail saying why.
    assert tis["too_big"]["state"] == "failed" and tis["too_big"]["try_number"] == 1
    mails = wait_for_mails(stack, "oom_probe", 1)
    assert [m["subject"].split(" night ")[0] for m in mails] == ["[Downlink] FAILED oom_probe.too_big"]
    assert mails[0]["subject"].endswith("(exit 137)")
    assert "out of memory: killed at its memory limit 128m, the ceiling 128m" in mails[0]["html"]
    assert not mails_about(stack, "oom_probe.grows")
