"""`make try ENTRY=name [NIGHT=...]` (downlink_airflow.try_entry): the entry -> (chain, task) mapping,
its errors, and the exit code of a real `airflow tasks test` run (a throwaway SQLite home)."""
import os
import subprocess
import sys
import textwrap

import pytest

from downlink_airflow.registry import load_registry_text  # noqa: E402
from downlink_airflow.try_entry import CannotTry, airflow_args, main, task_of  # noqa: E402

REGISTRY = textwrap.dedent("""
    version: 1
    chains:
      cron_daily_0730: {schedule: 30 7 * * *}
    scripts:
      - {name: reduce_night, command: "reduce.py --night {night}", chain: cron_daily_0730}
      - {name: own_schedule, command: x, schedule: "@hourly"}
      - {name: broken, command: x, chain: cron_daily_0730, retries: many}
      - {name: after_broken, command: x, chain: cron_daily_0730, after: broken}
    """)


@pytest.fixture
def reg():
    return load_registry_text(REGISTRY, "t.yaml", env={})


def test_an_entry_is_its_chain_and_its_name(reg):
    assert task_of(reg, "reduce_night") == ("cron_daily_0730", "reduce_night")
    assert task_of(reg, "own_schedule") == ("own_schedule", "own_schedule")


def test_an_unknown_entry_names_the_close_ones(reg):
    with pytest.raises(CannotTry, match=r"no entry 'reduce' in t.yaml; did you mean reduce_night\?"):
        task_of(reg, "reduce")
    with pytest.raises(CannotTry, match=r"no entry 'zzz' in t.yaml; the entries are: reduce_night, own_schedule"):
        task_of(reg, "zzz")


def test_an_entry_left_out_of_its_chain_says_why(reg):
    own = r"entry 'broken' is left out of its chain \(`make check`\):\n  scripts\[2\] 'broken': retries: 'many' is not a whole"
    with pytest.raises(CannotTry, match=own + r" number from 0 to 20$"):
        task_of(reg, "broken")
    with pytest.raises(CannotTry, match=r"entry 'after_broken' is left out.*\n  scripts\[3\] 'after_broken': after: left out because 'broken'"):
        task_of(reg, "after_broken")


def test_the_night_is_the_chains_night_parameter():
    assert airflow_args("c", "t") == ["tasks", "test", "c", "t"]
    assert airflow_args("c", "t", "2026-11-24") == ["tasks", "test", "c", "t", "--task-params", '{"night": "2026-11-24"}']


def test_bad_usage_is_exit_2(tmp_path, capsys):
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    assert main(["reduce_night", "--night", "24.11.2026", "--registry", str(path)]) == 2
    assert main(["nope", "--registry", str(path)]) == 2
    err = capsys.readouterr().err
    assert "NIGHT='24.11.2026': not a date" in err and "try: no entry 'nope'" in err


DAG = textwrap.dedent("""
    import pendulum
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.python import PythonOperator

    def good(params):
        print("TRIED NIGHT", params["night"])

    def bad():
        raise SystemExit(3)

    with DAG("tchain", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), params={"night": None}):
        PythonOperator(task_id="good", python_callable=good)
        PythonOperator(task_id="bad", python_callable=bad)
    """)
RUN = textwrap.dedent("""
    import sys
    from downlink_airflow.try_entry import airflow_args, run_task_test
    print("STATE", run_task_test(airflow_args("tchain", sys.argv[1], "2026-11-24")))
    """)


@pytest.mark.parametrize("task, state", [("good", "success"), ("bad", "failed")])
def test_a_real_task_test_gives_the_tasks_outcome(tmp_path, task, state):
    """`airflow tasks test` exits 0 whatever the task did: try_entry reads the outcome itself."""
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "t.py").write_text(DAG)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db"}
    for cmd in (["airflow", "db", "migrate"], ["airflow", "dags", "reserialize"]):
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    out = subprocess.run([sys.executable, "-c", RUN, task], env=env, capture_output=True, text=True, timeout=300)
    assert f"STATE {state}" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    if task == "good":
        assert "TRIED NIGHT 2026-11-24" in out.stdout + out.stderr
