"""The DAG factory: one DAG per chain of the registry, one DockerOperator task per entry.

Every chain gets the same shape as the built-in daily chain: a `night` parameter (default: last
night), trigger-style scheduling that never starts a missed tick on a new stack, and a watcher
that fails the run when any step failed (steps that run "always" would otherwise turn it green).
"""
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Param
from docker.types import Mount

from downlink_airflow import step_secrets
from downlink_airflow.alerts import digest_task, stderr_notifier, throttled_alerts
from downlink_airflow.config import Settings
from downlink_airflow.registry import Registry
from downlink_airflow.steps import DATA_DIR, NIGHT, RUN_DIR, astro_step
from downlink_airflow.watch import failure_watcher

# What {night}, {run_dir}, {run_id}, {data} become in a command: Jinja, rendered per run.
PLACEHOLDER_VALUES = {"night": NIGHT, "run_dir": RUN_DIR, "run_id": "{{ run_id }}", "data": DATA_DIR}


def timetable(schedule, timezone="UTC"):
    """The chain's cron read in `timezone` (the registry's chain `timezone:`): the timetable works
    in local wall-clock time, so `30 7 * * *` in Europe/Berlin stays at 07:30 across DST."""
    if schedule is None:
        return None
    # run_immediately=timedelta(0), not False: Airflow 3.3 treats False like None and would run
    # the last tick at once when a stack starts shortly after it (up to 10% of the period).
    return CronTriggerTimetable(schedule, timezone=timezone, run_immediately=timedelta(0))


def image_of(script, settings):
    """'astro' is the deployed astro image; the tag is read when the task runs (Airflow Variable
    downlink_image_tag, set by `make deploy`), so a deploy reaches the next task, not running ones."""
    if script.image == "astro":
        return "downlink/astro:{{ var.value.get('downlink_image_tag', '%s') }}" % settings.image_tag
    return script.image


def chain_doc(chain, scripts):
    lines = [chain.description or f"Chain `{chain.name}` from the script registry.", "",
             f"Schedule: `{chain.schedule or 'manual only'}` ({chain.timezone}). Steps, from `registry.yaml`:", ""]
    for s in scripts:
        after = f" after {', '.join(s.after)}" + (" (whatever their outcome)" if s.when == "always" else "") if s.after else ""
        lines.append(f"- **{s.name}**{after}: `{s.command if isinstance(s.command, str) else ' '.join(s.command)}`")
    lines += ["", 'Reprocess a night: `airflow dags trigger %s --conf \'{"night": "YYYY-MM-DD"}\'`.' % chain.name]
    return "\n".join(lines)


# The steps that bring a night's files in are the registry's `ingest: true` entries. The arrivals
# DAG runs them as soon as files appear; in both DAGs they share a one-slot pool (dags/pools.json,
# imported by airflow-init), so an arrival run and the daily chain never download the same night
# at once (each step is idempotent, but not concurrent).
INGEST_POOL = "downlink_ingest"


def ingest_steps(scripts):
    """The ingest entries among `scripts`, in their order."""
    return [s for s in scripts if s.ingest]


def step_mounts(s, settings):
    """The entry's host mounts and its secrets (each file read-only at /run/secrets/NAME) as binds."""
    mounts = [Mount(target=m.target, source=m.host, type="bind", read_only=not m.rw) for m in s.mounts]
    mounts += [Mount(target=step_secrets.target(name), source=step_secrets.host_path(settings.secrets_dir, name),
                     type="bind", read_only=True) for name in s.secrets]
    return mounts


def step_task(s, settings, values, recipients, **overrides):
    """The task of registry entry `s`: its command (placeholders from `values`) in a container."""
    # A step that keeps failing mails once, reminds per DOWNLINK_ALERT_REPEAT, says when it recovers.
    alerts = throttled_alerts(recipients, settings.alert_repeat)
    kwargs = dict(
        image=image_of(s, settings),
        environment={"DOWNLINK_NIGHT": values["night"], **s.environment},
        settings=settings,
        retries=s.retries,
        retry_delay=s.retry_delay,
        execution_timeout=s.timeout,
        mem_limit=s.memory,
        memory_ceiling=(s.memory_max or settings.memory_ceiling) if s.memory else None,
        trigger_rule=s.trigger_rule,
        writes_archive=s.writes_archive,
        extra_mounts=step_mounts(s, settings),
        secret_files=tuple(step_secrets.host_path(settings.secrets_dir, name) for name in s.secrets),
        # Ignored by the LocalExecutor; the pool caps heavy steps whatever the executor.
        **({"queue": s.queue, "pool": s.pool} if s.pool else {}),
        doc_md=s.description or None,
        on_failure_callback=alerts.on_failure if alerts else None,
        on_success_callback=alerts.on_success if alerts else None,
        stderr_callback=stderr_notifier(recipients) if s.warn_on_stderr else None,
    )
    kwargs.update(overrides)
    return astro_step(s.name, s.argv(values), **kwargs)


def build_dag(chain, scripts, settings):
    with DAG(
        dag_id=chain.name,
        description=(chain.description or f"registry chain {chain.name}")[:200],
        doc_md=chain_doc(chain, scripts),
        schedule=timetable(chain.schedule, chain.timezone),
        # Airflow applies this only when the DAG is first created: a chain already in the
        # database keeps its paused state (unpause: the UI's toggle or `airflow dags unpause`).
        is_paused_upon_creation=True if chain.paused else None,  # None: the stack's default
        # No start_date for scheduled chains (see timetable); manual chains need none either.
        start_date=None if chain.schedule else pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=chain.max_active_runs,
        params={"night": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}-\d{2}$",
                               description="night to process (YYYY-MM-DD); empty: last night")},
        tags=["downlink", "registry", *chain.tags],
    ) as dag:
        tasks = {}
        for s in scripts:
            # The entry's list, else the chain's, else the team's (DOWNLINK_ALERT_EMAIL); [] = nobody.
            recipients = next(e for e in (s.email, chain.email, settings.alert_email) if e is not None)
            extra = {"pool": INGEST_POOL} if settings.arrivals_enabled and s.ingest else {}
            tasks[s.name] = step_task(s, settings, PLACEHOLDER_VALUES, recipients, **extra)
        for s in scripts:
            for dep in s.after:
                tasks[dep] >> tasks[s.name]
        if tasks:
            list(tasks.values()) >> failure_watcher()
            if settings.digest_email:
                list(tasks.values()) >> digest_task(settings.digest_email, NIGHT)
    return dag


def build_dags(registry: Registry, settings=None, only=None):
    """{dag_id: DAG} for every chain with at least one usable entry (`only`: that chain alone)."""
    settings = settings or Settings.from_env()
    dags = {}
    for name, chain in registry.chains.items():
        if only is not None and name != only:
            continue
        scripts = registry.chain_scripts(name)
        if scripts:
            dags[name] = build_dag(chain, scripts, settings)
    return dags
