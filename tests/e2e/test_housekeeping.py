"""The housekeeping DAG on the real stack: aged fixtures on the data volume are pruned, fresh ones,
an unarchived staged file and the archive are untouched, and a dry run deletes nothing. The stack
is shared with the other modules: the unarchived file is staged for a night no chain runs, and
every fixture is removed afterwards (a file left in the sample night's staging would be archived
by its next run)."""
import json
import uuid

from conftest import SAMPLE_NIGHT

DAG = "housekeeping"
OLD = "60 days ago"
SPARE_NIGHT = "2026-01-01"  # no chain of the suite processes it
RECORD = json.dumps({"night": "2026-01-01", "filename": "e2e-bad.fits", "stage": "download", "reason": "e2e",
                     "path": f"quarantine/{SPARE_NIGHT}/e2e-bad.fits", "recorded_at": "2025-01-01T00:00:00+00:00"})
# Aged and fresh fixtures, written as the steps' user (a copy of an archived frame staged long ago,
# an unarchived staged file, old and fresh scratch, old quarantined bytes with their record).
SETUP = f"""
set -e
cd /data
frame=$(cd raw/{SAMPLE_NIGHT} && ls | grep -v '^\\.' | head -n1)
mkdir -p staging/{SAMPLE_NIGHT} staging/{SPARE_NIGHT} work/e2e_housekeeping/old_run work/e2e_housekeeping/fresh_run quarantine/{SPARE_NIGHT}
cp raw/{SAMPLE_NIGHT}/$frame staging/{SAMPLE_NIGHT}/$frame && touch -d '{OLD}' staging/{SAMPLE_NIGHT}/$frame
echo unarchived > staging/{SPARE_NIGHT}/e2e-unarchived.fits && touch -d '{OLD}' staging/{SPARE_NIGHT}/e2e-unarchived.fits
echo old > work/e2e_housekeeping/old_run/scratch && touch -d '{OLD}' work/e2e_housekeeping/old_run/scratch work/e2e_housekeeping/old_run
echo fresh > work/e2e_housekeeping/fresh_run/scratch
echo bad > quarantine/2026-01-01/e2e-bad.fits && touch -d '200 days ago' quarantine/2026-01-01/e2e-bad.fits
printf '%s' '{RECORD}' > quarantine/2026-01-01/e2e-bad.fits.download.reason.json
echo $frame
"""
LIST = "cd /data && find raw -type f -printf '%p %s %T@\\n' | sort"
CLEAN = f"cd /data && rm -rf staging/{SPARE_NIGHT} work/e2e_housekeeping quarantine/{SPARE_NIGHT}"


def exists(stack, path):
    return stack.on_data("sh", "-c", f"test -e /data/{path} && echo yes || echo no").strip() == "yes"


def test_dry_run_then_prune(stack, sample_night):
    frame = stack.on_data("sh", "-c", SETUP, user="1000").strip().splitlines()[-1]
    try:
        check_dry_run_then_prune(stack, frame)
    finally:
        stack.on_data("sh", "-c", CLEAN + f" staging/{SAMPLE_NIGHT}/{frame}", user="0")


def check_dry_run_then_prune(stack, frame):
    raw_before = stack.on_data("sh", "-c", LIST)
    staged = f"staging/{SAMPLE_NIGHT}/{frame}"

    run_id = f"e2e_housekeeping_dry_{uuid.uuid4().hex[:6]}"
    assert stack.run_dag(DAG, run_id, conf={"dry_run": True}, timeout=900) == "success"
    for path in (staged, "work/e2e_housekeeping/old_run", f"quarantine/{SPARE_NIGHT}/e2e-bad.fits"):
        assert exists(stack, path), f"the dry run deleted {path}"
    assert "would free" in stack.task_log(DAG, run_id, "data_volume")

    run_id = f"e2e_housekeeping_{uuid.uuid4().hex[:6]}"
    assert stack.run_dag(DAG, run_id, timeout=900) == "success"
    assert not exists(stack, staged), "an archived staging leftover is pruned"
    assert not exists(stack, "work/e2e_housekeeping/old_run")
    assert not exists(stack, f"quarantine/{SPARE_NIGHT}/e2e-bad.fits")
    assert exists(stack, f"staging/{SPARE_NIGHT}/e2e-unarchived.fits"), "an unarchived staged file is kept"
    assert exists(stack, "work/e2e_housekeeping/fresh_run/scratch")
    record = json.loads(stack.data_file(f"quarantine/{SPARE_NIGHT}/e2e-bad.fits.download.reason.json"))
    assert record["pruned_at"] and record["reason"] == "e2e"
    assert stack.on_data("sh", "-c", LIST) == raw_before, "the archive is untouched"
    reports = stack.on_data("ls", "/data/housekeeping").split()
    assert any(r.endswith("-dry-run.json") for r in reports) and any(not r.endswith("-dry-run.json") for r in reports)
    states = {ti["task_id"]: ti["state"] for ti in stack.api.task_instances(DAG, run_id)}
    assert states == dict.fromkeys(["active_runs", "data_volume", "metadata", "task_logs", "mailbox", "report"], "success")
