"""daily_chain: the night's data from the telescope archive to calibrated, checked products.

download -> archive -> index -> calibrate -> iraf -> sources -> diagnostics -> report

Every step is a `downlink <step> --night N` command in the astro image (run any by hand with
`docker run --rm downlink/astro:TAG downlink <step> --help`). Scheduled daily (DOWNLINK_CHAIN_SCHEDULE,
default 11:00 UTC) for the night before; reprocess any night with
`airflow dags trigger daily_chain --conf '{"night": "YYYY-MM-DD"}'`. Reruns converge: no duplicate
rows, no lost files. diagnostics and report run even when an earlier step failed.
"""
from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, chain
from downlink_airflow.config import Settings
from downlink_airflow.steps import NIGHT, astro_step
from downlink_airflow.watch import failure_watcher

settings = Settings.from_env()


def step(task_id, command=None, **kwargs):
    return astro_step(task_id, ["downlink", command or task_id, "--night", NIGHT], settings=settings, **kwargs)


with DAG(
    dag_id="daily_chain",
    description="download, archive, index, calibrate, IRAF, sources, diagnostics, report",
    doc_md=__doc__,
    # A trigger timetable with no start_date: a new stack waits for the next tick instead of
    # starting a run at once for the last one (which would be for a night it never received).
    # run_immediately=timedelta(0), not False: Airflow 3.3 treats False like None (run the past
    # tick when it is less than 10% of the period old, i.e. up to 2.4 h for a daily chain).
    schedule=CronTriggerTimetable(settings.chain_schedule, timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    params={"night": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}-\d{2}$",
                           description="night to process (YYYY-MM-DD); empty: last night")},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20)},
    tags=["downlink", "chain"],
):
    steps = [
        step("download"),
        step("archive"),
        step("index"),
        step("calibrate"),
        step("iraf", "iraf-stats"),
        step("sources"),
        step("diagnostics", trigger_rule=TriggerRule.ALL_DONE, retries=0),
        step("report", trigger_rule=TriggerRule.ALL_DONE),
    ]
    chain(*steps)
    steps >> failure_watcher()
