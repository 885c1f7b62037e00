"""When a failing step mails the team: once when it starts failing, then at most one reminder per
DOWNLINK_ALERT_REPEAT while it stays failed, and once "recovered" when it next succeeds (a step
that fails every 5 minutes used to mail every 5 minutes).

Pure decisions on a small state record (`now` is passed in, nothing is read or sent here):
{"failing": bool, "since": ISO time the streak began, "last_mailed": ISO time of the last mail}.
"""
from datetime import datetime, timedelta

FAILED, STILL_FAILING, RECOVERED = "failed", "still_failing", "recovered"


def _time(text):
    return datetime.fromisoformat(text) if text else None


def on_failure(state, now, repeat):
    """(mail kind or None, new state) for a step that just failed for good. `repeat` of 0: no
    reminders, only the first mail of a streak."""
    state = state or {}
    if not state.get("failing"):
        stamp = now.isoformat()
        return FAILED, {"failing": True, "since": stamp, "last_mailed": stamp}
    last = _time(state.get("last_mailed"))
    if repeat > timedelta(0) and (last is None or now - last >= repeat):
        return STILL_FAILING, {**state, "last_mailed": now.isoformat()}
    return None, state


def on_success(state):
    """(mail kind or None, new state or None when nothing needs writing) for a step that just
    succeeded: "recovered" only when a streak was open, so a normal success sends and writes nothing."""
    if not (state or {}).get("failing"):
        return None, None
    return RECOVERED, {"failing": False, "since": state.get("since"), "last_mailed": state.get("last_mailed")}
