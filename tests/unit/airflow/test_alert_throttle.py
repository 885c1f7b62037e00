"""The alert throttle's decisions (alert_throttle) and the callbacks that act on them
(alerts.ThrottledAlerts) with a faked state store, clock and mailer: nothing is sent or stored."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from downlink_airflow import alert_throttle as throttle
from downlink_airflow import alerts
from downlink_airflow.alert_state import key
from downlink_airflow.config import Settings, duration

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)
SIX_HOURS = timedelta(hours=6)


def test_a_new_failure_mails_and_opens_a_streak():
    kind, state = throttle.on_failure(None, T0, SIX_HOURS)
    assert kind == throttle.FAILED
    assert state == {"failing": True, "since": T0.isoformat(), "last_mailed": T0.isoformat()}


def test_failures_within_the_repeat_are_silent_then_one_reminder():
    _, state = throttle.on_failure(None, T0, SIX_HOURS)
    for minutes in (5, 60, 359):
        kind, same = throttle.on_failure(state, T0 + timedelta(minutes=minutes), SIX_HOURS)
        assert kind is None and same == state
    kind, state = throttle.on_failure(state, T0 + SIX_HOURS, SIX_HOURS)
    assert kind == throttle.STILL_FAILING
    assert state["since"] == T0.isoformat() and state["last_mailed"] == (T0 + SIX_HOURS).isoformat()
    assert throttle.on_failure(state, T0 + SIX_HOURS + timedelta(hours=1), SIX_HOURS)[0] is None


def test_a_repeat_of_zero_never_reminds():
    _, state = throttle.on_failure(None, T0, timedelta(0))
    assert throttle.on_failure(state, T0 + timedelta(days=30), timedelta(0))[0] is None


def test_success_mails_recovered_only_after_a_streak():
    assert throttle.on_success(None) == (None, None)
    assert throttle.on_success({"failing": False, "since": "x", "last_mailed": "x"}) == (None, None)
    _, state = throttle.on_failure(None, T0, SIX_HOURS)
    kind, closed = throttle.on_success(state)
    assert kind == throttle.RECOVERED and closed["failing"] is False and closed["since"] == T0.isoformat()
    # The next failure opens a new streak, mailed at once.
    assert throttle.on_failure(closed, T0 + timedelta(minutes=1), SIX_HOURS)[0] == throttle.FAILED


def test_the_repeat_setting_reads_durations_like_retry_delay():
    assert Settings.from_env({}).alert_repeat == SIX_HOURS
    assert Settings.from_env({"DOWNLINK_ALERT_REPEAT": "30m"}).alert_repeat == timedelta(minutes=30)
    assert duration("90", "X") == timedelta(seconds=90) and duration("1d", "X") == timedelta(days=1)
    with pytest.raises(ValueError, match="DOWNLINK_ALERT_REPEAT='soon'"):
        Settings.from_env({"DOWNLINK_ALERT_REPEAT": "soon"})


class FakeStore:
    def __init__(self, fail=False):
        self.states, self.reads, self.writes, self.fail = {}, 0, 0, fail

    def get(self, dag_id, task_id):
        self.reads += 1
        if self.fail:
            raise ConnectionError("execution API down")
        return self.states.get(key(dag_id, task_id))

    def put(self, dag_id, task_id, state):
        self.writes += 1
        self.states[key(dag_id, task_id)] = state


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def callbacks(store=None):
    sent, clock = [], Clock()
    store = store or FakeStore()
    cb = alerts.ThrottledAlerts(["team@example.org"], SIX_HOURS, store=store, clock=clock,
                                send=lambda kind, ctx, state: sent.append((kind, ctx["ti"].task_id, state["since"])))
    return cb, sent, clock, store


def ctx(task_id="calibrate"):
    return {"dag": SimpleNamespace(dag_id="daily_chain"), "ti": SimpleNamespace(task_id=task_id, dag_id="daily_chain")}


def test_a_step_failing_every_5_minutes_for_a_day_mails_five_times():
    cb, sent, clock, store = callbacks()
    for _ in range(24 * 12):  # every 5 minutes for 24 h
        cb.on_failure(ctx())
        clock.now += timedelta(minutes=5)
    cb.on_success(ctx())
    kinds = [kind for kind, _task, _since in sent]
    assert kinds == [throttle.FAILED] + [throttle.STILL_FAILING] * 3 + [throttle.RECOVERED]
    assert {since for _kind, _task, since in sent} == {T0.isoformat()}  # one streak throughout
    assert store.writes == 1 + 3 + 1  # the state is written only when a mail went out


def test_normal_successes_read_once_and_send_and_write_nothing():
    cb, sent, _clock, store = callbacks()
    for _ in range(3):
        cb.on_success(ctx())
    assert sent == [] and store.reads == 3 and store.writes == 0


def test_each_step_has_its_own_streak():
    cb, sent, _clock, _store = callbacks()
    cb.on_failure(ctx("calibrate"))
    cb.on_failure(ctx("download"))
    cb.on_failure(ctx("calibrate"))
    assert [(kind, task) for kind, task, _ in sent] == [(throttle.FAILED, "calibrate"), (throttle.FAILED, "download")]


def test_unreadable_state_still_mails_and_a_refused_mail_is_tried_again():
    cb, sent, _clock, store = callbacks(FakeStore(fail=True))
    cb.on_failure(ctx())
    cb.on_failure(ctx())
    assert [kind for kind, *_ in sent] == [throttle.FAILED] * 2 and store.writes == 0

    def refuse(kind, context, state):
        raise ConnectionRefusedError("relay down")

    cb, _sent, _clock, store = callbacks()
    cb.send = refuse
    with pytest.raises(ConnectionRefusedError):
        cb.on_failure(ctx())
    assert store.writes == 0  # not recorded as mailed: the next failure mails


def test_nobody_to_mail_means_no_callbacks():
    assert alerts.throttled_alerts((), SIX_HOURS) is None


def test_the_state_is_one_json_variable_per_step(monkeypatch):
    import airflow.sdk

    from downlink_airflow.alert_state import VariableStore

    saved = {}

    class Variable:
        @staticmethod
        def get(k, default=None, deserialize_json=False):
            assert deserialize_json
            return saved.get(k, default)

        @staticmethod
        def set(k, value, description=None, serialize_json=False):
            assert serialize_json and description
            saved[k] = value

    monkeypatch.setattr(airflow.sdk, "Variable", Variable)
    store = VariableStore()
    assert store.get("daily_chain", "calibrate") is None
    store.put("daily_chain", "calibrate", {"failing": True})
    assert saved == {"downlink_alert__daily_chain__calibrate": {"failing": True}}
    assert store.get("daily_chain", "calibrate") == {"failing": True}
