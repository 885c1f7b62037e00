"""The LocalExecutor, with the step operator's third-party imports done once, before its workers fork.

Each task runs in a process forked from a LocalExecutor worker, and that process imports the DAG
file, hence the Docker provider, the docker SDK and requests: about 0.3-0.8 s of CPU per task on a
2-core machine (profile in docs/benchmarks.md), paid again by every step. Imported here, in the
scheduler before `start()` forks the workers, they are inherited by every task process instead.
Only third-party modules that change with the image are preloaded: Downlink's own modules (and the
registry) are still imported fresh by each task, so `make deploy` reaches the next task as before.

Used through `AIRFLOW__CORE__EXECUTOR=downlink_airflow.executor.LocalExecutor` (docker-compose.yaml).
"""
import importlib

from airflow.executors.local_executor import LocalExecutor as AirflowLocalExecutor

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


class LocalExecutor(AirflowLocalExecutor):
    def start(self) -> None:
        preload()
        super().start()
