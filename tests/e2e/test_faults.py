"""Faults the chain must survive, injected into the real stack. Each test says what it injects
and checks the state afterwards."""
import time
import uuid

import pytest

from conftest import probe_chains

from test_alerts import mails_about, wait_for_mails

ALLOCATE = "python3 -c \"x = bytearray({mb} * 1024 * 1024); print('allocated {mb} MB')\""
PROBE = {
    "restart_probe": [
        # 30 s of "work", then its one effect: a line in a file on the data volume.
        {"name": "slow_effect", "command": "sleep 30; mkdir -p {data}/work; echo '{run_id}' >> {data}/work/restart_probe_effects.txt"},
    ],
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
    with probe_chains(stack, PROBE):
        yield


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


# --- bad input from the archive, and the archive going away ---------------------------------
DAG = "daily_chain"
BAD_NIGHT = "2001-01-01"
PUBLISH_BAD_NIGHT = r'''
import hashlib, io, json, os
import numpy as np
from astropy.io import fits

night = "/srv/archive/2001-01-01"
os.makedirs(night, exist_ok=True)

def fits_bytes(value, **cards):
    hdu = fits.PrimaryHDU(np.full((32, 32), value, dtype=np.float32))
    for key, val in cards.items():
        hdu.header[key.replace("_", "-")] = val
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()

good = fits_bytes(1, IMAGETYP="object", OBJECT="M31", DATE_OBS="2001-01-01T22:00:00", EXPTIME=30.0)
spaced = fits_bytes(2, IMAGETYP="object", OBJECT="M1", DATE_OBS="2001-01-01T23:00:00", EXPTIME=30.0)
absurd = fits_bytes(3, IMAGETYP="object", OBJECT="X", DATE_OBS="9999-99-99T99:99:99", EXPTIME=-5.0,
                    AIRMASS=1e30, RA="not a number", DEC="also not")
no_end = good.replace(b"END" + b" " * 77, b" " * 80, 1)
served = {  # name: (bytes served, bytes the manifest describes)
    "good.fits": (good, good),
    "with space \u00e9t\u00e9.fits": (spaced, spaced),
    "absurd.fits": (absurd, absurd),
    "not_fits.fits": (b"SIMPLE? no: this is a text file\n" * 100,) * 2,
    "no_end.fits": (no_end, no_end),
    "empty.fits": (b"", b""),
    "truncated.fits": (good[:3000], good),
    "bad_checksum.fits": (good, None),
}
entries = []
for name, (data, described) in served.items():
    with open(os.path.join(night, name), "wb") as fh:
        fh.write(data)
    if described is None:
        entries.append({"name": name, "size": len(data), "sha256": "0" * 64})
    else:
        entries.append({"name": name, "size": len(described), "sha256": hashlib.sha256(described).hexdigest()})
entries.append({"name": "../../etc/evil.fits", "size": 2880, "sha256": "1" * 64})
with open(os.path.join(night, "manifest.json"), "w") as fh:
    json.dump({"files": entries}, fh)
'''
REJECTED = {  # name: what the reason must say
    "not_fits.fits": "FITS", "no_end.fits": "END", "empty.fits": "", "truncated.fits": "truncated on the server",
    "bad_checksum.fits": "does not match the manifest", "../../etc/evil.fits": "rejected",
}


def chain_run(stack, night, wait=True):
    from dagrun import trigger as airflow_trigger

    run_id = f"e2e_fault_{uuid.uuid4().hex[:6]}"
    if not wait:
        stack.api.wait_for_dag(DAG)
        airflow_trigger(DAG, run_id, {"night": night})
        return run_id, None
    return run_id, stack.run_dag(DAG, run_id, conf={"night": night}, timeout=900)


@pytest.fixture(scope="module")
def bad_night(stack):
    """Injected: a night whose archive serves non-FITS, a missing END card, a 0-byte file, a file
    truncated on the server, a wrong checksum, absurd header values, a name with spaces and
    accents, and a manifest entry pointing outside the archive (../../etc)."""
    import subprocess

    subprocess.run(["docker", "run", "--rm", "-i", "-v", f"{stack.project}-archive-src:/srv/archive",
                    f"downlink/astro:{stack.tag}", "python3", "-"], input=PUBLISH_BAD_NIGHT, text=True,
                   check=True, capture_output=True, timeout=120)
    return chain_run(stack, BAD_NIGHT)


def test_bad_input_is_quarantined_with_reasons_and_the_night_goes_on(stack, bad_night):
    run_id, state = bad_night
    tis = {t["task_id"]: t for t in stack.api.task_instances(DAG, run_id)}
    assert state == "success", {k: v["state"] for k, v in tis.items()}
    assert tis["download"]["try_number"] == 1  # nothing to retry: every bad file is bad for good
    with stack.archive_db() as conn:
        rejected = dict(conn.execute(
            "SELECT filename, reason FROM quarantine WHERE night = %s AND stage = 'download'", (BAD_NIGHT,)))
        indexed = dict(conn.execute("SELECT filename, sha256 FROM observations WHERE night = %s", (BAD_NIGHT,)))
    assert set(rejected) == set(REJECTED), rejected
    for name, says in REJECTED.items():
        assert says in rejected[name], (name, rejected[name])
    assert set(indexed) == {"good.fits", "with space \u00e9t\u00e9.fits", "absurd.fits"}
    listing = stack.data_file(f"staging/{BAD_NIGHT}/.manifest.json")
    import json

    described = {e["name"]: e["sha256"] for e in json.loads(listing)["files"]}
    assert all(indexed[name] == described[name] for name in indexed)  # the archive holds what was published


def test_nothing_is_written_outside_the_archive(stack, bad_night):
    import subprocess

    found = subprocess.run(["docker", "run", "--rm", "-v", f"{stack.project}-data:/data:ro", f"downlink/astro:{stack.tag}",
                            "sh", "-c", "find / -xdev -name 'evil*' 2>/dev/null; find /data -name 'evil*'"],
                           capture_output=True, text=True, timeout=120).stdout
    assert found.strip() == ""


def test_absurd_header_values_are_left_empty_with_a_note_not_guessed(stack, bad_night):
    with stack.archive_db() as conn:
        row = conn.execute("SELECT date_obs, exptime, airmass, ra, dec, array_to_string(notes, ' | ') "
                           "FROM observations WHERE night = %s AND filename = 'absurd.fits'", (BAD_NIGHT,)).fetchone()
    date_obs, exptime, airmass, ra, dec, notes = row
    assert date_obs is None and ra is None and dec is None, row
    assert notes, row


def test_archive_server_down_at_the_start_then_back(stack, bad_night):
    """Injected: archive-server stopped before the run; started again after the first failed try."""
    stack.compose("stop", "archive-server")
    try:
        run_id, _ = chain_run(stack, BAD_NIGHT, wait=False)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ti = stack.api.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/download")
            if ti["state"] == "up_for_retry":
                break
            time.sleep(1)
        assert ti["state"] == "up_for_retry", ti["state"]
    finally:
        stack.compose("start", "archive-server")
    assert stack.api.wait_for_run(DAG, run_id, timeout=900) == "success"
    ti = stack.api.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/download")
    assert ti["try_number"] >= 2
    assert not mails_about(stack, f"{DAG}.download")


def test_archive_server_down_for_good_mails_once_and_stores_nothing(stack, bad_night):
    """Injected: archive-server stopped for the whole run (all of download's tries)."""
    from test_daily_chain import table_counts

    before = table_counts(stack)
    stack.compose("stop", "archive-server")
    try:
        run_id, state = chain_run(stack, "2001-01-02")
    finally:
        stack.compose("start", "archive-server")
    assert state == "failed"
    ti = stack.api.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/download")
    assert ti["state"] == "failed" and ti["try_number"] == 3
    mails = wait_for_mails(stack, f"{DAG}.download", 1)
    assert len(mails) == 1 and "unreachable" in mails[0]["html"], [m["subject"] for m in mails]
    after = table_counts(stack)
    assert {k: v for k, v in after.items() if k != "diagnostics"} == {k: v for k, v in before.items() if k != "diagnostics"}


def test_scheduler_killed_mid_run_the_run_completes_and_the_effect_happens_once(stack, probes):
    """Injected: the scheduler container (which runs the tasks) killed while a step runs, then
    started again."""
    from dagrun import trigger as airflow_trigger

    run_id = f"e2e_kill_{uuid.uuid4().hex[:6]}"
    stack.api.wait_for_dag("restart_probe")
    airflow_trigger("restart_probe", run_id)
    path = f"/api/v2/dags/restart_probe/dagRuns/{run_id}/taskInstances/slow_effect"
    deadline = time.monotonic() + 180
    while stack.api.get(path)["state"] != "running" and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)  # the step's container is up and sleeping
    stack.compose("kill", "scheduler")
    time.sleep(5)
    stack.compose("start", "scheduler")
    assert stack.api.wait_for_run("restart_probe", run_id, timeout=600) == "success"
    ti = stack.api.get(path)
    assert ti["try_number"] >= 2  # the first try was lost with its worker
    log = stack.task_log("restart_probe", run_id, "slow_effect", try_number=ti["try_number"])
    assert "not running the step again" in log, log[-3000:]
    effects = stack.data_file("work/restart_probe_effects.txt").split()
    assert effects.count(run_id) == 1, effects


def test_postgres_killed_during_index_then_back_converges_without_duplicates(stack, bad_night):
    """Injected: the postgres container (archive and Airflow metadata) killed as `index` starts,
    started again 10 s later."""
    run_id, _ = chain_run(stack, "2026-11-24", wait=False)
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/index"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if stack.api.get(path)["state"] == "running":
            break
        time.sleep(0.3)
    stack.compose("kill", "postgres")
    time.sleep(10)
    stack.compose("start", "postgres")
    stack.compose("up", "-d", "--wait")  # whatever exited with the database comes back
    stack.api._token = None
    deadline = time.monotonic() + 900
    state = None
    while time.monotonic() < deadline:
        try:
            state = stack.api.run(DAG, run_id)["state"]
        except Exception:  # the API is still reconnecting to its database
            state = None
        if state in ("success", "failed"):
            break
        time.sleep(5)
    assert state == "success", state
    assert stack.api.get(path)["try_number"] >= 2  # the kill cut the first try: the retry converged
    with stack.archive_db() as conn:
        rows, paths = conn.execute("SELECT count(*), count(DISTINCT path) FROM observations WHERE night = '2026-11-24'").fetchone()
    assert rows == paths == 29
