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


# IRAF itself (irafcl, not the PyRAF module the step runs) measures dev$pix and copies it to FITS,
# so the expectation comes from outside the code under test; numpy then checks IRAF's moments.
IRAF_FIELDS = ("npix", "mean", "midpt", "mode", "stddev", "skew", "kurtosis", "min", "max")
IRAF_SCRIPT = r"""
set home   = (envget ("HOME") // "/.iraf/")
set uparm  = "home$uparm/"
set userid = (envget ("USER"))
set imextn = "oif:imh fxf:fits,fit,fts plf:pl qpf:qp stf:hhh,??h"
images
imutil
imstatistics ("dev$pix", fields="%s", lower=INDEF, upper=INDEF, nclip=0, format=no)
imcopy ("dev$pix", "/tmp/pix.fits", verbose=no)
logout
""" % ",".join(IRAF_FIELDS)
NUMPY_CHECK = (
    "import json, numpy; from astropy.io import fits; d = fits.getdata('/tmp/pix.fits').astype('float64'); "
    "print(json.dumps({'npix': int(d.size), 'mean': d.mean(), 'stddev': d.std(ddof=1), "
    "'min': float(d.min()), 'max': float(d.max())}))")


@pytest.fixture(scope="module")
def iraf_on_dev_pix(stack):
    """(IRAF's own imstatistics row as a dict, numpy's moments of the same pixels)."""
    script = IRAF_SCRIPT.replace("'", "'\\''")
    out = stack.astro("sh", "-c", f"printf '%s' '{script}' >/tmp/imstat.cl && mkdir -p $HOME/.iraf/uparm "
                      f"&& irafcl -f /tmp/imstat.cl </dev/null && python3 -c \"{NUMPY_CHECK}\"")
    lines = [line for line in out.splitlines() if line.strip()]
    iraf_row = next(line for line in lines if line.split()[0] == str(512 * 512))
    values = iraf_row.split()
    assert len(values) == len(IRAF_FIELDS), iraf_row
    iraf = {"npix": int(values[0]), **{n: float(v) for n, v in zip(IRAF_FIELDS[1:], values[1:])}}
    return iraf, json.loads(lines[-1])


def test_iraf_numbers_in_postgres_equal_iraf_on_dev_pix(stack, env_check_run, iraf_on_dev_pix):
    run_id, _ = env_check_run
    iraf, numpy_stats = iraf_on_dev_pix
    with stack.archive_db() as conn:
        row = conn.execute(
            "SELECT npix, mean, midpt, mode, stddev, skew, kurtosis, min, max, iraf_version "
            "FROM env_check_imstat WHERE run_id = %s AND image = 'dev$pix'", (run_id,)
        ).fetchone()
    assert row is not None, f"no row for run {run_id}"
    stored = dict(zip(IRAF_FIELDS + ("iraf_version",), row))
    assert {n: stored[n] for n in IRAF_FIELDS} == iraf
    assert stored["iraf_version"].startswith("Community IRAF V2.")
    assert iraf["npix"] == numpy_stats["npix"] == 512 * 512  # dev$pix is IRAF's 512x512 M51 test image
    # IRAF prints 7 significant digits.
    for name in ("mean", "stddev", "min", "max"):
        assert iraf[name] == pytest.approx(numpy_stats[name], rel=1e-6), name


def test_container_output_is_in_the_task_logs(stack, env_check_run):
    run_id, _ = env_check_run
    assert "astropy" in stack.task_log(DAG, run_id, "versions")
    assert "npix = 262144" in stack.task_log(DAG, run_id, "iraf_imstat")
    assert f"for run {run_id}" in stack.task_log(DAG, run_id, "store_imstat")
