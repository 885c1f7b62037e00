"""housekeeping: every day (DOWNLINK_HOUSEKEEPING_SCHEDULE, 12:00 UTC) prune what nobody needs
any more, within the limits of .env (docs/operations.md "Housekeeping"):

- data_volume (a step in the astro image, `downlink housekeeping`): scratch of finished runs,
  archived staging leftovers, quarantined bytes (their records and rows are kept). Only work/,
  staging/ and quarantine/; raw/ is mounted read-only, to know what is archived.
- metadata: `airflow db clean`; task_logs: old files of the task logs; mailbox: old mails of the
  mail catcher (skipped without one).

Dry run (lists what it would delete, deletes nothing):
`airflow dags trigger housekeeping --conf '{"dry_run": true}'` or `make housekeeping DRY_RUN=1`.
"""
from airflow.sdk import DAG, Param, task

from downlink_airflow.alerts import throttled_alerts
from downlink_airflow.config import Settings
from downlink_airflow.registry_dags import timetable
from downlink_airflow.steps import astro_step

settings = Settings.from_env()
alerts = throttled_alerts(settings.alert_email, settings.alert_repeat)
callbacks = {"on_failure_callback": alerts.on_failure, "on_success_callback": alerts.on_success} if alerts else {}

with DAG(
    dag_id="housekeeping",
    description="daily pruning of scratch, staging, quarantined bytes, metadata, task logs and mail; dry_run lists it",
    doc_md=__doc__,
    schedule=timetable(settings.housekeeping_schedule),
    catchup=False,
    max_active_runs=1,
    params={"dry_run": Param(False, type="boolean", description="list what would be deleted; delete nothing")},
    default_args={"retries": 0, **callbacks},
    tags=["downlink", "housekeeping"],
):
    @task(task_id="active_runs")
    def active_runs():
        from downlink_airflow.health import AirflowAPI
        from downlink_airflow.housekeeping import active_runs

        return active_runs(AirflowAPI(settings=settings))

    data_volume = astro_step(
        "data_volume",
        ["downlink", "housekeeping", "--dry-run={{ params.dry_run }}",
         "--active-runs", "{{ ti.xcom_pull(task_ids='active_runs') | tojson }}"],
        settings=settings,
    )

    @task(task_id="metadata")
    def metadata(params=None):
        from downlink_airflow.housekeeping import clean_metadata

        return clean_metadata(settings.keep_metadata_days, bool(params["dry_run"]), settings.metadata_db_conn)

    @task(task_id="task_logs")
    def task_logs(params=None):
        from airflow.configuration import conf

        from downlink_airflow.housekeeping import prune_logs

        return prune_logs(conf.get("logging", "base_log_folder"), settings.keep_log_days, bool(params["dry_run"]))

    @task(task_id="mailbox")
    def mailbox(params=None):
        from downlink_airflow.housekeeping import prune_mailbox

        return prune_mailbox(settings.mail_api_url, settings.keep_mail_days, bool(params["dry_run"]))

    @task(task_id="report", trigger_rule="all_done")
    def report(metadata, task_logs, mailbox, ti=None):
        from downlink_airflow.housekeeping import summary

        data = ti.xcom_pull(task_ids="data_volume")  # the step's last line: what it freed
        lines = summary({"metadata": metadata, "task_logs": task_logs, "mailbox": mailbox}) + [f"data_volume: {data}"]
        for line in lines:
            print(line)
        return lines

    active_runs() >> data_volume
    report(metadata(), task_logs(), mailbox()).set_upstream(data_volume)
