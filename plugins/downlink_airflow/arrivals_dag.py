"""The `arrivals` DAG: download, archive and index a night as soon as new files appear in the
source. It is scheduled on the asset `downlink-arrivals`, whose watcher is the ArrivalTrigger
(arrivals.py) running in the triggerer; the steps are daily_chain's own registry entries, with
the same commands, retries and mail, run one after the other in one container (task `ingest`), so
the two DAGs do the same thing to a night. The daily
chain still runs the whole chain every day; index upserts, so nothing is stored twice."""
import dataclasses
import shlex
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, Param

from downlink_airflow.arrivals import ArrivalTrigger
from downlink_airflow.registry_dags import INGEST_POOL, PLACEHOLDER_VALUES, ingest_steps, step_task
from downlink_airflow.steps import NIGHT

DAG_ID = "arrivals"
TASK_ID = "ingest"
NIGHT_MARK = "@NIGHT@"
NIGHT_VAR = '"$DOWNLINK_NIGHT"'
ASSET = "downlink-arrivals"
SOURCE_CHAIN = "daily_chain"
# The night of the newest arrival event of this run; a manual run takes --conf night like the chains.
ARRIVAL_NIGHT = "{{ arrival_night(triggering_asset_events) or %s }}" % NIGHT[3:-3].strip()


def arrival_night(events):
    """The night named by the newest trigger event in a run's triggering asset events, else None."""
    newest = None
    for asset in events or {}:
        for event in events[asset]:
            payload = (event.extra or {}).get("payload") or {}
            if payload.get("night") and (newest is None or event.timestamp >= newest[0]):
                newest = (event.timestamp, payload["night"])
    return newest[1] if newest else None


def ingest_command(scripts):
    """One shell command running the entries' commands in order, `&&`-joined (cron's way): one
    container instead of three saves two task and container start-ups on every arrival. The
    night comes from $DOWNLINK_NIGHT (the night's template has quotes of its own)."""
    parts = []
    for s in scripts:
        argv = s.argv({**PLACEHOLDER_VALUES, "night": NIGHT_MARK})
        text = argv[2] if argv[:2] == ["sh", "-c"] else shlex.join(argv)
        parts.append(text.replace(shlex.quote(NIGHT_MARK), NIGHT_VAR).replace(NIGHT_MARK, NIGHT_VAR))
    return " && ".join(parts)


def arrivals_asset(settings):
    trigger = ArrivalTrigger(source=settings.source, data_dir="/data", poll_seconds=settings.arrivals_poll_seconds,
                             nights=settings.arrivals_nights)
    return Asset(name=ASSET, uri="downlink://arrivals", watchers=[AssetWatcher(name="new-files", trigger=trigger)])


def build_arrivals_dag(registry, settings):
    """The DAG, or None when arrivals are switched off (DOWNLINK_ARRIVALS=false) or the registry's
    daily chain lacks an ingest step."""
    scripts = ingest_steps(registry.chain_scripts(SOURCE_CHAIN))
    if not settings.arrivals_enabled or not scripts:
        return None
    values = {**PLACEHOLDER_VALUES, "night": ARRIVAL_NIGHT}
    with DAG(
        dag_id=DAG_ID,
        description="new files in the archive source: download, archive and index them within seconds",
        doc_md=__doc__,
        schedule=[arrivals_asset(settings)],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        # One at a time: events that come while a run works queue the next run.
        max_active_runs=1,
        user_defined_macros={"arrival_night": arrival_night},
        params={"night": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}-\d{2}$",
                               description="night to ingest (YYYY-MM-DD) on a manual run; empty: last night")},
        dagrun_timeout=timedelta(hours=2),
        tags=["downlink", "arrivals"],
    ) as dag:
        first = scripts[0]
        recipients = next(e for e in (first.email, registry.chains[SOURCE_CHAIN].email, settings.alert_email)
                          if e is not None)
        # One container runs all three, so it writes the archive if any of them does (archive).
        combined = dataclasses.replace(first, name=TASK_ID, command=ingest_command(scripts),
                                       writes_archive=any(s.writes_archive for s in scripts))
        step_task(combined, settings,
                  {**values, "night": NIGHT_VAR}, recipients, pool=INGEST_POOL,
                  environment={"DOWNLINK_NIGHT": ARRIVAL_NIGHT, **first.environment},
                  retries=max(s.retries for s in scripts), doc_md=f"`{' && '.join(s.name for s in scripts)}`, as in daily_chain")
    return dag
