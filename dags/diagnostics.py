"""diagnostics: Downlink checks itself every hour (DOWNLINK_DIAGNOSTICS_SCHEDULE) and mails the
team when something is wrong, saying what and which threshold was crossed.

- storage_and_data (a step in the astro image, `downlink health`): free space on the data and
  archive volumes and, measured by the postgres service, the database's (DOWNLINK_MIN_FREE_GB),
  the archive database answers, a new frame within DOWNLINK_FRESHNESS_HOURS.
- airflow_and_images (here, in Airflow): every component healthy and the scheduler's heartbeat
  recent (DOWNLINK_MAX_HEARTBEAT_AGE), runs that failed since the last check, step images present.

Try a threshold by hand: `airflow dags trigger diagnostics --conf '{"min_free_gb": 100000}'`.
"""
from datetime import timedelta

from airflow.sdk import DAG, Param, task

from downlink_airflow.alerts import throttled_alerts
from downlink_airflow.config import Settings
from downlink_airflow.registry_dags import timetable
from downlink_airflow.steps import astro_step

settings = Settings.from_env()
# An hourly check that stays red mails once and then per DOWNLINK_ALERT_REPEAT, not every hour.
alerts = throttled_alerts(settings.alert_email, settings.alert_repeat)
callbacks = {"on_failure_callback": alerts.on_failure, "on_success_callback": alerts.on_success} if alerts else {}

with DAG(
    dag_id="diagnostics",
    description="hourly self-check: disk, database, data freshness, Airflow, images; mails on a breach",
    doc_md=__doc__,
    schedule=timetable(settings.diagnostics_schedule),
    catchup=False,
    max_active_runs=1,
    params={
        "min_free_gb": Param(settings.min_free_gb, type="number", minimum=0,
                             description="free space each volume must keep (GB)"),
        "max_age_hours": Param(settings.freshness_hours, type="number", minimum=0,
                               description="a new frame within this many hours (0: off)"),
    },
    default_args={"retries": 0, **callbacks},
    tags=["downlink", "diagnostics"],
):
    astro_step(
        "storage_and_data",
        ["downlink", "health", "--min-free-gb", "{{ params.min_free_gb }}",
         "--max-age-hours", "{{ params.max_age_hours }}"],
        settings=settings,
    )

    @task(task_id="airflow_and_images")
    def airflow_and_images():
        from airflow.sdk import Variable

        from downlink_airflow.health import run_checks

        tag = Variable.get("downlink_image_tag", default=settings.image_tag)
        return run_checks(tag, window=timedelta(minutes=settings.diagnostics_window_minutes), settings=settings)

    airflow_and_images()
