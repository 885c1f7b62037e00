"""astro_env_check through the real stack: Airflow schedules three DockerOperator steps in the
astro image; the IRAF numbers end up in Postgres and the containers' output in the task log."""
import json
import uuid

import pytest

DAG = "astro_env_check"


@pytest.fixture(scope="module")
def env_check_run(stack):
    run_id = f"e2e_{uuid.uuid4().hex[:8]}"
    state = stack.run_dag(DAG, run_id, timeout=600)
    return run_id, state


def test_run_succeeds(stack, env_check_run):
    run_id, state = env_check_run
    states = {ti["task_id"]: ti["state"] for ti in stack.api.task_instances(DAG, run_id)}
    assert state == "success", states
    assert states == {"versions": "success", "iraf_imstat": "success", "store_imstat": "success", "watcher": "skipped"}


def test_iraf_numbers_in_postgres_equal_pyraf_on_dev_pix(stack, env_check_run):
    run_id, _ = env_check_run
    expected = json.loads(stack.astro(
        "python3", "-c",
        "import json; from downlink.iraf_imstat import imstatistics; print(json.dumps(imstatistics('dev$pix')))",
    ).strip().splitlines()[-1])
    with stack.archive_db() as conn:
        row = conn.execute(
            "SELECT npix, mean, midpt, mode, stddev, skew, kurtosis, min, max, iraf_version "
            "FROM env_check_imstat WHERE run_id = %s AND image = 'dev$pix'", (run_id,)
        ).fetchone()
    assert row is not None, f"no row for run {run_id}"
    names = ("npix", "mean", "midpt", "mode", "stddev", "skew", "kurtosis", "min", "max", "iraf_version")
    assert dict(zip(names, row)) == {n: expected[n] for n in names}
    assert expected["npix"] == 512 * 512  # dev$pix is IRAF's 512x512 M51 test image


def test_container_output_is_in_the_task_logs(stack, env_check_run):
    run_id, _ = env_check_run
    assert "astropy" in stack.task_log(DAG, run_id, "versions")
    assert "npix = 262144" in stack.task_log(DAG, run_id, "iraf_imstat")
    assert f"for run {run_id}" in stack.task_log(DAG, run_id, "store_imstat")
