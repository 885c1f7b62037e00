"""The night a daily_chain run processes: the one asked for, else the night before the run."""
import datetime
from types import SimpleNamespace

import jinja2

from downlink_airflow.steps import NIGHT  # noqa: E402


def render(conf, run_after, param=None):
    macros = SimpleNamespace(timedelta=datetime.timedelta)
    return jinja2.Template(NIGHT).render(params={"night": param}, dag_run=SimpleNamespace(run_after=run_after, conf=conf),
                                         macros=macros)


def test_scheduled_run_processes_the_previous_night():
    assert render({}, datetime.datetime(2026, 11, 25, 11, 0, tzinfo=datetime.timezone.utc)) == "2026-11-24"
    assert render(None, datetime.datetime(2026, 11, 25, 11, 0, tzinfo=datetime.timezone.utc)) == "2026-11-24"


def test_conf_night_wins():
    assert render({"night": "2026-01-02"}, datetime.datetime(2026, 11, 25, 11, 0)) == "2026-01-02"
    assert render({}, datetime.datetime(2026, 11, 25, 11, 0), param="2026-01-03") == "2026-01-03"
