"""A run must end failed when any step failed, even when later steps (report, diagnostics) run
"all_done" and succeed: Airflow decides a run's state from its leaf tasks, so this leaf fails
whenever one of its upstream tasks did."""
from airflow.sdk import TriggerRule, task


@task(task_id="watcher", trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def failure_watcher():
    raise RuntimeError("a step of this run failed: see the red task(s) in the grid")
