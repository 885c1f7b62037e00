"""Chain-level `timezone:` and `paused:` of the registry, and what the DAG factory makes of them."""
import textwrap

import pendulum
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable as CoreCronTriggerTimetable

from downlink_airflow.config import Settings
from downlink_airflow.registry import load_registry_text
from downlink_airflow.registry_dags import build_dags

SETTINGS = Settings.from_env({"DOWNLINK_TAG": "abc123"})


def registry(chain_settings):
    text = textwrap.dedent("""
        chains:
          local:
            schedule: "30 7 * * *"
        """) + textwrap.indent(textwrap.dedent(chain_settings), "    ") + textwrap.dedent("""
        scripts:
          - {name: a, command: a.sh, chain: local}
        """)
    return load_registry_text(text, "t.yaml", {})


def next_run_utc(dag, day):
    """The first run after midnight UTC of `day`, in UTC, as the scheduler computes it (the core
    timetable that the DAG's serialized SDK timetable becomes)."""
    sdk = dag.timetable
    core = CoreCronTriggerTimetable(sdk.expression, timezone=sdk.timezone)
    start = pendulum.parse(f"{day}T00:00:00Z")
    info = core.next_dagrun_info(last_automated_data_interval=DataInterval(start, start),
                                 restriction=TimeRestriction(earliest=None, latest=None, catchup=True))
    return info.run_after.in_timezone("UTC").strftime("%H:%M")


def test_a_local_time_schedule_follows_daylight_saving_time():
    reg = registry("timezone: Europe/Berlin")
    assert reg.problems == []
    dag = build_dags(reg, SETTINGS)["local"]
    assert str(dag.timetable.timezone) == "Europe/Berlin"
    # 07:30 in Berlin: CET (UTC+1) in January, CEST (UTC+2) in July.
    assert next_run_utc(dag, "2027-01-15") == "06:30"
    assert next_run_utc(dag, "2027-07-15") == "05:30"
    assert "(Europe/Berlin)" in dag.doc_md


def test_without_a_timezone_chains_run_in_utc():
    dag = build_dags(registry(""), SETTINGS)["local"]
    assert next_run_utc(dag, "2027-01-15") == next_run_utc(dag, "2027-07-15") == "07:30"


def test_an_unknown_timezone_is_a_problem_naming_chain_and_field():
    for bad in ("Europe/Berlinn", "CEST+2", "../etc/passwd", "", 2):
        reg = registry(f"timezone: {bad!r}" if isinstance(bad, str) else f"timezone: {bad}")
        assert [p for p in reg.problems if p.startswith("chain 'local': timezone:")], (bad, reg.problems)
        assert "local" not in reg.chains


def test_a_paused_chain_is_created_paused_and_others_keep_the_stacks_default():
    paused = build_dags(registry("paused: true"), SETTINGS)["local"]
    assert paused.is_paused_upon_creation is True
    assert build_dags(registry("paused: false"), SETTINGS)["local"].is_paused_upon_creation is None
    assert build_dags(registry(""), SETTINGS)["local"].is_paused_upon_creation is None


def test_paused_must_be_true_or_false():
    reg = registry("paused: 'yes'")
    assert reg.problems == ["chain 'local': paused: 'yes' is not true or false"]


def test_make_check_shows_the_zone_and_the_paused_flag(tmp_path, capsys):
    from downlink_airflow import cli

    path = tmp_path / "registry.yaml"
    path.write_text("chains: {c: {schedule: '30 7 * * *', timezone: Europe/Berlin, paused: true}}\n"
                    "scripts:\n  - {name: a, command: a.sh, chain: c}\n")
    assert cli.main(["check", str(path)]) == 0
    assert "c  (schedule: 30 7 * * * Europe/Berlin; created paused; 1 steps)" in capsys.readouterr().out
