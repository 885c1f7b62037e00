"""The data-arrival trigger and the arrivals DAG (runs in the Airflow image)."""
import asyncio
import datetime
import json
import os
import types

import pytest

from downlink_airflow import arrivals  # noqa: E402
from downlink_airflow.arrivals import ArrivalTrigger, pending_by_night, recent_nights  # noqa: E402
from downlink_airflow.arrivals_dag import arrival_night, build_arrivals_dag  # noqa: E402
from downlink_airflow.config import Settings  # noqa: E402
from downlink_airflow.registry import load_registry, load_registry_text  # noqa: E402
from downlink_airflow.registry_dags import INGEST_POOL, build_dags  # noqa: E402

DAGS = os.environ.get("DOWNLINK_DAGS_FOLDER", "/opt/airflow/dags")
UTC = datetime.timezone.utc


def touch(path, text="x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def publish(root, night, names):
    for n in names:
        touch(os.path.join(root, night, n))
    touch(os.path.join(root, night, "manifest.json"),
          json.dumps({"files": [{"name": n, "size": 1, "sha256": "0" * 64} for n in names]}))


def test_recent_nights_roll_over_at_noon_utc_oldest_first():
    assert recent_nights(2, datetime.datetime(2026, 11, 25, 11, 0, tzinfo=UTC)) == ["2026-11-23", "2026-11-24"]
    assert recent_nights(1, datetime.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) == ["2026-11-25"]


def test_pending_is_published_minus_archived_and_quarantined(tmp_path):
    src, data = str(tmp_path / "src"), str(tmp_path / "data")
    publish(src, "2026-11-24", ["a.fits", "b.fits", "c.fits", "bad.fits"])
    touch(os.path.join(data, "raw", "2026-11-24", "a.fits"))
    touch(os.path.join(data, "staging", "2026-11-24", "b.fits"))  # staged is not archived yet
    touch(os.path.join(data, "quarantine", "2026-11-24", "bad.fits.download.reason.json"),
          json.dumps({"filename": "bad.fits", "reason": "not FITS"}))
    assert pending_by_night(src, data, ["2026-11-23", "2026-11-24"]) == {"2026-11-24": ["b.fits", "c.fits"]}


def test_a_directory_without_manifest_lists_its_files(tmp_path):
    touch(str(tmp_path / "src" / "2026-11-24" / "x.fits"))
    touch(str(tmp_path / "src" / "2026-11-24" / "y.fits.part"))
    assert pending_by_night(str(tmp_path / "src"), str(tmp_path / "data"), ["2026-11-24"]) == {"2026-11-24": ["x.fits"]}


def test_fires_once_per_new_file_and_again_only_after_refire_seconds():
    t = ArrivalTrigger(source="http://x", refire_seconds=600)
    assert t.due({"2026-11-24": ["a"]}, 1000.0) == "2026-11-24"
    assert t.due({"2026-11-24": ["a"]}, 1005.0) is None  # its run is on the way
    assert t.due({"2026-11-24": ["a", "b"]}, 1010.0) == "2026-11-24"  # b is new
    assert t.due({"2026-11-24": ["a", "b"]}, 1700.0) == "2026-11-24"  # still pending: the run failed
    assert t.due({}, 1710.0) is None and t.fired == {}


def test_oldest_night_first_then_the_next():
    t = ArrivalTrigger(source="http://x")
    pending = {"2026-11-23": ["late.fits"], "2026-11-24": ["new.fits"]}
    assert [t.due(pending, 1.0), t.due(pending, 2.0), t.due(pending, 3.0)] == ["2026-11-23", "2026-11-24", None]


def test_serializes_to_its_own_class_path_and_round_trips():
    path, kwargs = ArrivalTrigger(source="http://archive-server:8080", poll_seconds=2).serialize()
    assert path == "downlink_airflow.arrivals.ArrivalTrigger"
    assert ArrivalTrigger(**kwargs).serialize() == (path, kwargs)


def test_run_yields_an_event_naming_the_night_and_files(tmp_path, monkeypatch):
    night = recent_nights(1)[0]
    publish(str(tmp_path / "src"), night, ["new.fits"])
    trigger = ArrivalTrigger(source=str(tmp_path / "src"), data_dir=str(tmp_path / "data"), poll_seconds=0.01)

    async def first():
        agen = trigger.run()
        try:
            return await asyncio.wait_for(agen.__anext__(), 10)
        finally:
            await agen.aclose()

    event = asyncio.run(first())
    assert event.payload["night"] == night and event.payload["files"] == ["new.fits"]


def test_an_unreadable_source_is_logged_and_polled_again(tmp_path, monkeypatch):
    calls = []

    def broken(*args):
        calls.append(1)
        raise OSError("connection refused")

    monkeypatch.setattr(arrivals, "pending_by_night", broken)
    trigger = ArrivalTrigger(source="http://nowhere", poll_seconds=0.01)

    async def some_polls():
        agen = trigger.run()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(agen.__anext__(), 0.2)

    asyncio.run(some_polls())
    assert len(calls) > 1


def event(night, ts):
    return types.SimpleNamespace(extra={"from_trigger": True, "payload": {"night": night}}, timestamp=ts)


def test_the_run_processes_the_newest_events_night():
    t0 = datetime.datetime(2026, 11, 25, tzinfo=UTC)
    events = {"asset": [event("2026-11-24", t0), event("2026-11-25", t0 + datetime.timedelta(seconds=5))]}
    assert arrival_night(events) == "2026-11-25"
    assert arrival_night({}) is None and arrival_night(None) is None


def test_the_dag_runs_daily_chains_ingest_commands_in_one_step_on_the_watched_asset():
    reg = load_registry(os.path.join(DAGS, "registry.yaml"))
    dag = build_arrivals_dag(reg, Settings.from_env({"DOWNLINK_ARRIVALS_POLL_SECONDS": "3"}))
    (task,) = dag.tasks
    assert task.task_id == "ingest" and task.pool == INGEST_POOL
    assert task.command == ["sh", "-c", 'downlink download --night "$DOWNLINK_NIGHT" && downlink archive --night '
                            '"$DOWNLINK_NIGHT" && downlink index --night "$DOWNLINK_NIGHT"']
    assert "arrival_night(triggering_asset_events)" in task.environment["DOWNLINK_NIGHT"]
    assert task.retries == 2 and task.on_failure_callback
    chain = build_dags(reg, Settings.from_env({}))["daily_chain"]
    assert chain.get_task("index").pool == INGEST_POOL and chain.get_task("calibrate").pool != INGEST_POOL
    (asset,) = dag.timetable.asset_condition.objects if hasattr(dag.timetable.asset_condition, "objects") \
        else [dag.timetable.asset_condition]
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, ArrivalTrigger) and watcher.trigger.poll_seconds == 3


def test_the_night_template_renders_from_the_event_or_the_conf():
    from jinja2 import Environment

    from downlink_airflow.arrivals_dag import ARRIVAL_NIGHT

    env = Environment()
    env.globals["arrival_night"] = arrival_night
    ts = datetime.datetime(2026, 11, 25, tzinfo=UTC)
    run = types.SimpleNamespace(conf={}, run_after=ts)
    params = {"night": None}
    macros = types.SimpleNamespace(timedelta=datetime.timedelta)
    render = env.from_string(ARRIVAL_NIGHT).render
    assert render(triggering_asset_events={"a": [event("2026-11-25", ts)]}, dag_run=run, params=params,
                  macros=macros) == "2026-11-25"
    run.conf = {"night": "2026-01-02"}
    assert render(triggering_asset_events={}, dag_run=run, params=params, macros=macros) == "2026-01-02"


def test_the_ingest_steps_are_the_registrys_ingest_entries_in_order():
    text = open(os.path.join(DAGS, "registry.yaml")).read()
    assert text.count("ingest: true") == 3
    # Without the flags, daily_chain has no ingest step, so there is no arrivals DAG.
    plain = load_registry_text(text.replace("    ingest: true\n", ""), "registry.yaml")
    assert plain.problems == [] and build_arrivals_dag(plain, Settings.from_env({})) is None
    # Only download and index flagged: the arrivals step runs those two.
    two = load_registry_text(text.replace("writes_archive: true      # the one step that may write raw/ (read-only everywhere else)\n"
                                          "    ingest: true\n", "writes_archive: true\n"), "registry.yaml")
    (task,) = build_arrivals_dag(two, Settings.from_env({})).tasks
    assert task.command == ["sh", "-c", 'downlink download --night "$DOWNLINK_NIGHT" && downlink index --night "$DOWNLINK_NIGHT"']


def test_switched_off_there_is_no_dag_and_no_pool():
    reg = load_registry(os.path.join(DAGS, "registry.yaml"))
    off = Settings.from_env({"DOWNLINK_ARRIVALS": "false"})
    assert build_arrivals_dag(reg, off) is None
    assert build_dags(reg, off)["daily_chain"].get_task("download").pool != INGEST_POOL


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="DOWNLINK_ARRIVALS_POLL_SECONDS"):
        Settings.from_env({"DOWNLINK_ARRIVALS_POLL_SECONDS": "0"})
    with pytest.raises(ValueError, match="DOWNLINK_ARRIVALS="):
        Settings.from_env({"DOWNLINK_ARRIVALS": "maybe"})
