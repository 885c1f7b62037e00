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


def test_wait_readable_wakes_when_a_worker_puts_a_result():
    out = run("import multiprocessing, time\n"
              "from multiprocessing import SimpleQueue\n"
              "from downlink_airflow.executor import wait_readable\n"
              "q = SimpleQueue()\n"
              "print('RESULT=%s' % wait_readable(q, 0.2))\n"  # nothing comes: the timeout
              "p = multiprocessing.Process(target=lambda: (time.sleep(0.5), q.put('done')))\n"
              "p.start()\n"
              "print('RESULT=%s' % wait_readable(q, 120))\n"  # generous ceiling: it returns on the put
              "print('RESULT=%s' % q.get())\n"
              "p.join()\n")
    assert out == ["False", "True", "done"]


def test_sync_waits_for_a_task_end_only_while_tasks_run():
    out = run("from multiprocessing import SimpleQueue\n"
              "from downlink_airflow import executor\n"
              "from airflow.executors.local_executor import LocalExecutor as Base\n"
              "waits = []\n"
              "executor.wait_readable = lambda q, t: waits.append(t)\n"
              "Base.sync = lambda self: None\n"
              "e = executor.LocalExecutor(parallelism=2)\n"
              "e.task_end_wait = 0.7\n"
              "e.result_queue = SimpleQueue()\n"
              "e.sync()\n"  # nothing running: no wait, new runs are seen at once
              "print('RESULT=%s' % waits)\n"
              "e.running.add('a task key')\n"
              "e.sync()\n"
              "print('RESULT=%s' % waits)\n"
              "e.result_queue.put('a result')\n"
              "e.sync()\n"  # a result is waiting already: read it now
              "print('RESULT=%s' % waits)\n")
    assert out == ["[]", "[0.7]", "[0.7]"]


def test_the_wait_is_the_documented_setting():
    out = run("import os\n"
              "os.environ['DOWNLINK_TASK_END_WAIT'] = '2.5'\n"
              "from downlink_airflow import executor\n"
              "print('RESULT=%s' % executor.LocalExecutor.task_end_wait)\n")
    assert out == ["2.5"]
