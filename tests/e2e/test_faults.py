"""Faults the chain must survive, injected into the real stack. Each test says what it injects
and checks the state afterwards."""
import time
import uuid

import pytest

from conftest import gate_command, probe_chains, release_gate, wait_for_gate, wait_for_retry_running
from test_alerts import mails_about, wait_for_mails

ALLOCATE = "python3 -c \"x = bytearray({mb} * 1024 * 1024); print('allocated {mb} MB')\""
PROBE = {
    "restart_probe": [
        # "Work" until the test releases it (a gate), then its one effect: a line in a file on the data volume.
        {"name": "slow_effect", "command": gate_command("slow_effect", "mkdir -p {data}/work; "
                                                        "echo '{run_id}' >> {data}/work/restart_probe_effects.txt")},
    ],
    "oom_probe": [
        # Needs ~160 MB: killed at 64m and 128m, fits at 256m.
        {"name": "grows", "command": ALLOCATE.format(mb=150), "memory": "64m", "memory_max": "256m",
         "email": ["ops@example.org"]},
        # Needs ~410 MB, the ceiling is 128m: out of memory for good.
        {"name": "too_big", "command": ALLOCATE.format(mb=400), "memory": "64m", "memory_max": "128m",
         "retries": 2, "email": ["ops@example.org"]},
    ],
    "raw_probe": [
        # Any step but the archive's: the archive of raw frames is read-only to it.
        {"name": "intruder", "command": "ls {data}/raw > /dev/null && touch {data}/raw/intruder", "retries": 0, "email": []},
        # An entry that says it writes the archive may.
        {"name": "writer", "command": "touch {data}/raw/.e2e-writer && rm {data}/raw/.e2e-writer", "retries": 0,
         "writes_archive": True, "email": []},
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


def start_archive_server(stack):
    """The stopped archive-server's own container started again, as an operator would. Not
    `compose start`, which may first rerun its dependency archive-seed (the whole sample night
    copied again) and so may bring the server back only after the download's retries are spent."""
    import subprocess

    subprocess.run(["docker", "start", f"{stack.project}-archive-server-1"], check=True, capture_output=True, timeout=120)


def test_archive_server_down_at_the_start_then_back(stack, bad_night):
    """Injected: archive-server stopped before the run; started again after the first failed try."""
    stack.compose("stop", "archive-server")
    try:
        run_id, _ = chain_run(stack, BAD_NIGHT, wait=False)
        # The first try has failed once the task waits for its retry or has started another try
        # (a busy machine can answer the API more slowly than the retry delay lasts).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ti = stack.api.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/download")
            if ti["state"] == "up_for_retry" or ti["try_number"] >= 2:
                break
            time.sleep(1)
        assert ti["state"] == "up_for_retry" or ti["try_number"] >= 2, ti
        assert ti["try_number"] < 3, ti  # a try is left that can see the archive back
    finally:
        start_archive_server(stack)
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
        start_archive_server(stack)
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
    wait_for_gate(stack, run_id, "slow_effect")  # the step's container is up and working
    stack.compose("kill", "scheduler")
    stack.compose("start", "scheduler")
    # The lost try is noticed after the heartbeat timeout; its retry adopts the running container,
    # and only then does the step finish.
    wait_for_retry_running(stack, path)
    release_gate(stack, run_id, "slow_effect")
    assert stack.api.wait_for_run("restart_probe", run_id, timeout=600) == "success"
    ti = stack.api.get(path)
    assert ti["try_number"] >= 2  # the first try was lost with its worker
    log = stack.task_log("restart_probe", run_id, "slow_effect", try_number=ti["try_number"])
    assert "not running the step again" in log, log[-3000:]
    effects = stack.data_file("work/restart_probe_effects.txt").split()
    assert effects.count(run_id) == 1, effects


def test_postgres_killed_during_index_then_back_converges_without_duplicates(stack, bad_night):
    """Injected: the postgres container (archive and Airflow metadata) killed as `index` starts,
    started again once index's container has ended (at least 10 s, at most 60 s later)."""
    run_id, _ = chain_run(stack, "2026-11-24", wait=False)
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/index"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if stack.api.get(path)["state"] == "running":
            break
        time.sleep(0.3)
    stack.compose("kill", "postgres")
    # Down for at least 10 s, and until index's container (if it got as far as starting one) has
    # ended: on a busy machine the container may start seconds after the task shows "running",
    # and a database back by then would inject no fault at all.
    import hashlib
    import subprocess

    container = f"downlink-{DAG}-index-{hashlib.sha1(run_id.encode()).hexdigest()[:12]}"
    began, seen = time.monotonic(), False
    while time.monotonic() - began < 60:
        states = subprocess.run(["docker", "ps", "-a", "--filter", f"name={container}", "--format", "{{.State}}"],
                                capture_output=True, text=True, timeout=60).stdout.split()
        seen = seen or bool(states)
        if time.monotonic() - began >= 10 and (seen and (not states or "exited" in states) or time.monotonic() - began >= 30):
            break
        time.sleep(0.5)
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


def test_the_archive_is_read_only_in_every_step_but_the_one_that_writes_it(stack, probes):
    """Injected: a step that tries to write into the archive of raw frames."""
    run_id = f"e2e_raw_{uuid.uuid4().hex[:6]}"
    before = stack.on_data("sh", "-c", "find /data/raw -type f -exec sha256sum {} + | sort")
    assert stack.run_dag("raw_probe", run_id, timeout=300) == "failed"
    tis = {t["task_id"]: t["state"] for t in stack.api.task_instances("raw_probe", run_id)}
    assert tis["intruder"] == "failed" and tis["writer"] == "success", tis
    assert "Read-only file system" in stack.task_log("raw_probe", run_id, "intruder")
    assert stack.on_data("sh", "-c", "find /data/raw -type f -exec sha256sum {} + | sort") == before


def publish_night(stack, night):
    """A generated night (29 frames of 135 KB) in the development archive; its manifest."""
    import json
    import subprocess

    subprocess.run(["docker", "run", "--rm", "-v", f"{stack.project}-archive-src:/srv/archive", f"downlink/astro:{stack.tag}",
                    "downlink", "make-night", "--night", night, "--out", "/srv/archive"],
                   check=True, capture_output=True, text=True, timeout=300)
    out = subprocess.run(["docker", "run", "--rm", "-v", f"{stack.project}-archive-src:/srv/archive:ro",
                          f"downlink/astro:{stack.tag}", "cat", f"/srv/archive/{night}/manifest.json"],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return {e["name"]: e["sha256"] for e in json.loads(out)["files"]}


def night_rows(stack, night):
    with stack.archive_db() as conn:
        return conn.execute("SELECT filename, sha256 FROM observations WHERE night = %s", (night,)).fetchall()


def leftovers(stack, night):
    """Partial or temporary files of a night, anywhere on the data and archive volumes."""
    return stack.on_data("sh", "-c", f"find /data -path '*{night}*' \\( -name '*.part' -o -name '.*tmp*' \\) | sort").split()


SLOW_NIGHT = "2001-01-03"


def test_a_trickling_transfer_is_stopped_kept_and_resumed_and_the_rest_of_the_night_goes_on(stack):
    """Injected: the archive server sends one file of the night at 2 KB/s (nginx limit_rate),
    below the minimum rate (10 KB/s after a 5 s grace in the test stack); then at full speed."""
    published = publish_night(stack, SLOW_NIGHT)
    slow = sorted(published)[-1]
    nginx = "/etc/nginx/nginx.conf"
    rule = f"location = /{SLOW_NIGHT}/{slow} {{ limit_rate 2k; }}"
    stack.compose("exec", "-T", "-u", "0", "archive-server", "sh", "-c",
                  f"cp {nginx} /tmp/nginx.conf.orig && sed -i 's|location = /healthz|{rule} location = /healthz|' {nginx}"
                  " && nginx -t -q && nginx -s reload")
    try:
        time.sleep(2)
        run_id, state = chain_run(stack, SLOW_NIGHT)
    finally:
        stack.compose("exec", "-T", "-u", "0", "archive-server", "sh", "-c",
                      f"cp /tmp/nginx.conf.orig {nginx} && nginx -s reload")
    tis = {t["task_id"]: t for t in stack.api.task_instances(DAG, run_id)}
    # download gave up on the slow file but not on the night: the others were archived and indexed.
    assert tis["download"]["state"] == "success" and tis["download"]["try_number"] == 1
    assert tis["index"]["state"] == "success" and tis["diagnostics"]["state"] == "failed"
    rows = dict(night_rows(stack, SLOW_NIGHT))
    assert set(rows) == set(published) - {slow}  # never indexed as good while incomplete
    assert all(rows[name] == published[name] for name in rows)
    assert "too slow" in stack.task_log(DAG, run_id, "download")
    # One mail, from the diagnostics step, naming the file and why.
    mails = wait_for_mails(stack, f"{DAG}.diagnostics night {SLOW_NIGHT}", 1)
    assert len(mails) == 1, [m["subject"] for m in mails]
    assert slow in mails[0]["html"] and "too slow" in mails[0]["html"] and "still transferring" in mails[0]["html"]
    # The partial file is kept, and the next run resumes it at full speed.
    assert leftovers(stack, SLOW_NIGHT) == [f"/data/staging/{SLOW_NIGHT}/{slow}.part"]
    run_id, state = chain_run(stack, SLOW_NIGHT)
    assert state == "success"
    assert "resuming at byte" in stack.task_log(DAG, run_id, "download")
    rows = night_rows(stack, SLOW_NIGHT)
    assert sorted(rows) == sorted(published.items())  # all 29, each once, as published
    assert leftovers(stack, SLOW_NIGHT) == []


FULL_NIGHT = "2001-01-04"


def test_a_full_data_volume_fails_clearly_mails_once_and_leaves_no_partial_file(stack):
    """Injected: the data volume (a 256 MB tmpfs in the test stack) filled to its last 64 KB
    before a night of 29 frames of 135 KB each is downloaded; then space freed again."""
    published = publish_night(stack, FULL_NIGHT)
    fill = ("import os; os.makedirs('/data/work', exist_ok=True); st = os.statvfs('/data'); "
            "fd = os.open('/data/work/e2e-filler', os.O_CREAT | os.O_WRONLY, 0o644); "
            "os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize - 65536); os.close(fd)")
    stack.on_data("python3", "-c", fill, user="1000")
    try:
        run_id, state = chain_run(stack, FULL_NIGHT)
        assert state == "failed"
        ti = stack.api.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/download")
        assert ti["state"] == "failed" and ti["try_number"] == 3
        mails = wait_for_mails(stack, f"{DAG}.download night {FULL_NIGHT}", 1)
        assert len(mails) == 1, [m["subject"] for m in mails]
        body = mails[0]["html"]
        assert "no space left on the device" in body and "data volume /data:" in body and "MB free of" in body, body
        assert leftovers(stack, FULL_NIGHT) == []  # no partial file left to be mistaken for data
        assert night_rows(stack, FULL_NIGHT) == []
    finally:
        stack.on_data("rm", "-f", "/data/work/e2e-filler", user="1000")
    run_id, state = chain_run(stack, FULL_NIGHT)
    assert state == "success"
    assert sorted(night_rows(stack, FULL_NIGHT)) == sorted(published.items())
