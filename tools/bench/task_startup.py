"""Where a step task's start-up goes, in the airflow image (run by bench_overhead.py).

A task process is forked from a LocalExecutor worker, which has Airflow imported already; the task
then imports the DAG file (and so the Docker provider) and builds the DAG. This times those parts
in fresh interpreters, the way a task meets them: `airflow` is imported first and not counted.
Prints one JSON object: medians in seconds over REPS fresh interpreters per variant.
"""
import json
import statistics
import subprocess
import sys

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
DAG_FILE = "/opt/airflow/dags/registry_chains.py"
PROBE = r"""
import json, os, sys, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
preload = sys.argv[1] == "preload"
if preload:
    from downlink_airflow.executor import preload as run_preload
    run_preload()
if sys.argv[2] != "-":
    os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = sys.argv[2]
t0 = time.perf_counter()
import airflow.providers.docker.operators.docker
t1 = time.perf_counter()
bag = DagBag(dag_folder=%r, safe_mode=False, load_op_links=False)
t2 = time.perf_counter()
print("RESULT=" + json.dumps({"provider_import": t1 - t0, "dag_file": t2 - t1, "dags": len(bag.dags)}))
""" % DAG_FILE


def probe(preload, dag_id):
    out = subprocess.run([sys.executable, "-c", PROBE, "preload" if preload else "plain", dag_id or "-"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(next(line[7:] for line in out.splitlines() if line.startswith("RESULT=")))


def main():
    variants = {"Airflow's LocalExecutor, every chain built": (False, None),
                "provider preloaded (downlink executor), every chain built": (True, None),
                "provider preloaded, the task's chain only (shipped)": (True, "daily_chain")}
    result = {}
    for label, (preload, dag_id) in variants.items():
        runs = [probe(preload, dag_id) for _ in range(REPS)]
        result[label] = {key: statistics.median(r[key] for r in runs) for key in ("provider_import", "dag_file")}
        result[label]["dags"] = runs[0]["dags"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
