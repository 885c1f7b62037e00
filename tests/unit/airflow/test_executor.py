"""downlink_airflow.executor: the step operator's imports are made before the workers fork."""
import subprocess
import sys


def run(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": "/opt/airflow/plugins", "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
                               "PATH": "/usr/bin:/bin"}).stdout
    # Airflow logs to stdout too: only the lines the snippet printed count.
    return [line.split("=", 1)[1] for line in out.splitlines() if line.startswith("RESULT=")]


def test_start_preloads_the_docker_provider_before_forking_workers():
    # A fresh interpreter: pytest's own process may already hold these modules.
    out = run("import sys\n"
              "from downlink_airflow import executor\n"
              "from airflow.executors.local_executor import LocalExecutor as Base\n"
              "seen = []\n"
              "Base.start = lambda self: seen.append('airflow.providers.docker.operators.docker' in sys.modules)\n"
              "print('RESULT=%s' % ('docker' in sys.modules))\n"
              "executor.LocalExecutor(parallelism=1).start()\n"
              "print('RESULT=%s' % seen[0])\n")
    assert out == ["False", "True"]


def test_a_module_that_fails_to_import_is_left_to_the_task():
    assert run("from downlink_airflow.executor import preload\n"
               "print('RESULT=%s' % ','.join(preload(('docker', 'downlink_no_such_module'))))\n") == ["docker"]


def test_downlinks_own_modules_are_not_preloaded():
    # They must stay fresh per task so that a deploy reaches the next task.
    assert run("from downlink_airflow.executor import PRELOAD\n"
               "print('RESULT=%s' % [m for m in PRELOAD if m.startswith('downlink')])\n") == ["[]"]
