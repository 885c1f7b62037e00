"""The LocalExecutor, with two changes that cut what each step of a chain costs.

1. The step operator's third-party imports are done once, before its workers fork. Each task runs
   in a process forked from a LocalExecutor worker, and that process imports the DAG file, hence
   the Docker provider, the docker SDK and requests: about 0.3-0.8 s of CPU per task on a 2-core
   machine (docs/benchmarks.md), paid again by every step. Imported in the scheduler before
   `start()` forks the workers, they are inherited by every task process instead. Only third-party
   modules are preloaded: Downlink's own modules (and the registry) are still imported fresh by
   each task, so `make deploy` reaches the next task as before.
2. While tasks run, the scheduler waits for one to end instead of polling. Airflow's scheduler
   loop sleeps `scheduler_idle_sleep_time` between loops and learns that a task ended only at its
   next loop: a short sleep gives a short gap before a chain's next step but spends CPU on a
   scheduling loop (and its database queries) several times a second, CPU that a step running
   beside it on a 2-core machine loses. Here `sync()` blocks on the workers' result queue for up to
   DOWNLINK_TASK_END_WAIT seconds while tasks run and no result is waiting: the loop wakes the
   moment a task ends (the next step is then scheduled at once) and otherwise runs about once a
   second. With no task running it returns at once, so new runs are seen as before.

Used through `AIRFLOW__CORE__EXECUTOR=downlink_airflow.executor.LocalExecutor` (docker-compose.yaml).
"""
import importlib

from airflow.executors.local_executor import LocalExecutor as AirflowLocalExecutor

from downlink_airflow.config import Settings

# What every step's task imports through dags/registry_chains.py -> downlink_airflow.steps.
PRELOAD = (
    "airflow.providers.docker.operators.docker",
    "airflow.providers.docker.exceptions",
    "docker",
    "docker.types",
    "airflow.providers.smtp.notifications.smtp",
)


def preload(modules=PRELOAD):
    """Import `modules`; one that fails is left for the task to import (and report) itself."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # noqa: BLE001 - a broken provider must fail the task with its own error, not the scheduler
            pass
    return loaded


def wait_readable(queue, timeout):
    """Block until `queue` (a multiprocessing SimpleQueue) has something to read, or `timeout`
    seconds. True when it has. A queue without the pipe reader of CPython's SimpleQueue is not
    waited on (the scheduler then polls as Airflow's own executor does)."""
    reader = getattr(queue, "_reader", None)
    if reader is None or timeout <= 0:
        return not queue.empty()
    return bool(reader.poll(timeout))


class LocalExecutor(AirflowLocalExecutor):
    task_end_wait = Settings.from_env().task_end_wait

    def start(self) -> None:
        preload()
        super().start()

    def sync(self) -> None:
        # heartbeat() has just handed the workers what fits in their slots; whatever still waits
        # (a slot, a pool) waits for a task to end too.
        if self.running and self.result_queue.empty():
            wait_readable(self.result_queue, self.task_end_wait)
        super().sync()
