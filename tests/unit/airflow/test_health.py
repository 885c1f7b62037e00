"""The Airflow-side checks of the diagnostics DAG, on canned API answers (runs in the Airflow image)."""
from datetime import datetime, timedelta, timezone

import pytest

from downlink_airflow import health  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def stamp(seconds_ago):
    return (NOW - timedelta(seconds=seconds_ago)).isoformat()


def healthy(heartbeat_age=5):
    return {"metadatabase": {"status": "healthy"},
            "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": stamp(heartbeat_age)},
            "triggerer": {"status": "healthy"}, "dag_processor": {"status": "healthy"}}


def test_components_healthy():
    ok, message = health.components_check(healthy(), NOW, 120)
    assert ok and "heartbeat 5 s ago" in message


def test_a_stale_heartbeat_names_the_threshold():
    ok, message = health.components_check(healthy(heartbeat_age=600), NOW, 120)
    assert not ok and "scheduler heartbeat 600 s ago (threshold DOWNLINK_MAX_HEARTBEAT_AGE=120 s)" in message


def test_an_unhealthy_component_is_named():
    state = healthy()
    state["triggerer"] = {"status": "unhealthy"}
    ok, message = health.components_check(state, NOW, 120)
    assert not ok and "triggerer is unhealthy" in message


def test_each_failed_run_is_reported_once():
    runs = [{"dag_id": "daily_chain", "dag_run_id": "r1", "end_date": stamp(1800)},
            {"dag_id": "daily_chain", "dag_run_id": "r0", "end_date": stamp(20000)},
            {"dag_id": "diagnostics", "dag_run_id": "d1", "end_date": stamp(100)}]
    ok, message = health.failed_runs_check(runs, NOW, timedelta(hours=1))
    assert not ok and "1 new since the last check (daily_chain r1)" in message and "2 in the last 24 h" in message
    ok, message = health.failed_runs_check(runs[1:], NOW, timedelta(hours=1))
    assert ok and "none new" in message


def test_missing_images_are_listed():
    ok, message = health.images_check(["downlink/astro:a", "other:1"], lambda image: image == "other:1")
    assert not ok and "downlink/astro:a" in message and "other:1" not in message.split("missing:")[1].split("(")[0]


class FakeAPI:
    def __init__(self, state):
        self.state = state

    def health(self):
        return self.state

    def failed_runs(self, since):
        return []


def test_run_checks_raises_one_error_listing_every_breach(monkeypatch):
    monkeypatch.setattr(health, "image_exists", lambda settings: (lambda image: False))
    monkeypatch.setattr(health, "wanted_images", lambda tag: [f"downlink/astro:{tag}"])
    with pytest.raises(health.HealthBreach) as err:
        health.run_checks("t1", timedelta(hours=1), api=FakeAPI(healthy(heartbeat_age=999)), now=NOW)
    assert "scheduler heartbeat" in str(err.value) and "downlink/astro:t1" in str(err.value)
