"""Every DAG file imports cleanly inside the Airflow image (as Astronomer's template checks)."""
import os

import pytest
from airflow.dag_processing.dagbag import DagBag

DAGS_FOLDER = os.environ.get("DOWNLINK_DAGS_FOLDER", "/opt/airflow/dags")


@pytest.fixture(scope="module")
def dagbag():
    return DagBag(dag_folder=DAGS_FOLDER)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(f"{f}: {e}" for f, e in dagbag.import_errors.items())


# registry_check.py only reports the registry's problems; it defines no DAG on purpose.
NO_DAG = {"registry_check.py"}


def test_every_dag_file_defines_a_dag(dagbag):
    files = {os.path.join(DAGS_FOLDER, f) for f in os.listdir(DAGS_FOLDER) if f.endswith(".py") and f not in NO_DAG}
    defined = {dag.fileloc for dag in dagbag.dags.values()}
    assert files <= defined, f"files without a DAG: {sorted(files - defined)}"


def test_dags_are_documented_and_tagged(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md or dag.description, f"{dag_id} has no description"


def test_env_check_chain(dagbag):
    dag = dagbag.dags["astro_env_check"]
    assert [t.task_id for t in dag.topological_sort()] == ["versions", "iraf_imstat", "store_imstat", "watcher"]


def test_daily_chain_order_and_failure_watch(dagbag):
    dag = dagbag.dags["daily_chain"]
    order = ["download", "archive", "index", "calibrate", "iraf", "sources", "diagnostics", "report"]
    for upstream, downstream in zip(order, order[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids, f"{upstream} -> {downstream}"
    assert dag.get_task("report").trigger_rule == "all_done"
    watcher = dag.get_task("watcher")
    assert set(order) <= watcher.upstream_task_ids and watcher.trigger_rule == "one_failed"
    assert dag.get_task("download").command[-2:] == ["--night", dag.get_task("download").command[-1]]


@pytest.mark.parametrize("now", ["2026-11-25T11:00:30", "2026-11-25T13:05:00", "2026-11-25T03:00:00"])
def test_daily_chain_waits_for_its_next_tick(dagbag, monkeypatch, now):
    """A new stack must not start a scheduled run at once for the last tick (a night it never got),
    however soon after that tick it comes up."""
    import airflow.timetables.trigger as trigger
    import pendulum
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction

    now = pendulum.parse(now, tz="UTC")
    monkeypatch.setattr(trigger, "utcnow", lambda: now)
    dag = dagbag.dags["daily_chain"]
    # The scheduler's timetable: the DAG's one as it is serialized and decoded.
    timetable = decode_timetable(encode_timetable(dag.timetable))
    first = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup))
    assert first.run_after > now
    assert first.run_after.hour == 11 and first.run_after.minute == 0
    assert first.run_after - now <= pendulum.duration(days=1)


def test_a_task_parse_builds_only_its_own_chain():
    """A task process parses registry_chains.py with Airflow's parsing context naming its DAG:
    only that chain is built (the others cost every step their build time for nothing)."""
    from airflow.sdk.definitions._internal.dag_parsing_context import _airflow_parsing_context_manager

    path = os.path.join(DAGS_FOLDER, "registry_chains.py")
    everything = set(DagBag(dag_folder=path).dags)
    assert {"daily_chain", "astro_env_check"} <= everything
    with _airflow_parsing_context_manager(dag_id="astro_env_check", task_id="versions"):
        task_bag = DagBag(dag_folder=path)
    assert set(task_bag.dags) == {"astro_env_check"}
    assert task_bag.import_errors == {}
    assert [t.task_id for t in task_bag.dags["astro_env_check"].topological_sort()] == \
        [t.task_id for t in DagBag(dag_folder=path).dags["astro_env_check"].topological_sort()]


def test_housekeeping_dag(dagbag):
    dag = dagbag.dags["housekeeping"]
    assert {t.task_id for t in dag.tasks} == {"active_runs", "data_volume", "metadata", "task_logs", "mailbox", "report"}
    assert dag.params["dry_run"] is False
    step = dag.get_task("data_volume")
    assert step.command[:3] == ["downlink", "housekeeping", "--dry-run={{ params.dry_run }}"]
    assert "active_runs" in step.upstream_task_ids
    # The archive volume, when it is one, is mounted read-only: housekeeping only reads raw/.
    assert all(m.get("ReadOnly") for m in step.mounts if m["Target"] == "/data/raw")
    assert dag.get_task("report").trigger_rule == "all_done"


def test_housekeeping_step_command_renders(dagbag):
    """The step's arguments as Airflow renders them: the param's value, the runs as JSON."""
    import json
    from types import SimpleNamespace

    step = dagbag.dags["housekeeping"].get_task("data_volume")
    ti = SimpleNamespace(xcom_pull=lambda task_ids: ["daily_chain/manual__2026-12-01T00:00:00+00:00"])
    rendered = step.render_template(step.command, {"params": {"dry_run": True}, "ti": ti})
    assert rendered[2] == "--dry-run=True"
    assert json.loads(rendered[4]) == ["daily_chain/manual__2026-12-01T00:00:00+00:00"]
