"""A file that appears in the archive is indexed within seconds, with nothing triggered by hand:
the arrivals watcher in the triggerer sees it, and the `arrivals` DAG downloads, archives and
indexes its night."""
import time
import uuid

from publish_arrival import current_night, publish

# The target is a median of 30 s; a shared 2-core machine gets a generous bound.
DEADLINE = 240


def row_for(stack, night, name):
    import psycopg

    with stack.archive_db() as conn:
        try:
            return conn.execute("SELECT path, indexed_at, run_id FROM observations WHERE night = %s AND filename = %s",
                                (night, name)).fetchone()
        except psycopg.errors.UndefinedTable:  # a fresh stack: the first index creates it
            return None


def wait_for_row(stack, night, name, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = row_for(stack, night, name)
        if row:
            return row
        time.sleep(0.5)
    return None


def test_a_published_file_is_indexed_without_a_trigger(stack):
    stack.api.wait_for_dag("arrivals", timeout=240)
    night, name = current_night(), f"ARRIVAL.{uuid.uuid4().hex[:8]}.fits"
    published = publish(stack.project, stack.tag, name, night)
    row = wait_for_row(stack, night, name)
    assert row, f"{night}/{name} not indexed {DEADLINE} s after it was published"
    path, indexed_at, run_id = row
    assert path == f"raw/{night}/{name}"
    assert run_id.startswith("asset_triggered__"), run_id  # the watcher's run, nobody triggered it
    print(f"arrival latency: {indexed_at.timestamp() - published:.1f} s")

    # A second file on the same night: only a new run adds it; the first row is still there once.
    second = f"ARRIVAL.{uuid.uuid4().hex[:8]}.fits"
    publish(stack.project, stack.tag, second, night)
    assert wait_for_row(stack, night, second)
    with stack.archive_db() as conn:
        counts = conn.execute("SELECT count(*), count(DISTINCT path) FROM observations WHERE night = %s",
                              (night,)).fetchone()
    assert counts[0] == counts[1] >= 2


def test_the_arrival_runs_succeeded_and_share_the_ingest_pool(stack):
    deadline = time.monotonic() + DEADLINE
    while stack.api.get("/api/v2/dags/arrivals/dagRuns?state=queued&state=running")["dag_runs"]:
        assert time.monotonic() < deadline, "arrivals runs still going"
        time.sleep(2)
    runs = stack.api.get("/api/v2/dags/arrivals/dagRuns?order_by=-run_after&limit=5")["dag_runs"]
    assert runs and all(r["run_type"] == "asset_triggered" for r in runs)
    finished = [r for r in runs if r["state"] in ("success", "failed")]
    assert finished and all(r["state"] == "success" for r in finished), [(r["dag_run_id"], r["state"]) for r in runs]
    tis = stack.api.task_instances("arrivals", finished[0]["dag_run_id"])
    assert {ti["task_id"]: ti["pool"] for ti in tis} == {"ingest": "downlink_ingest"}
