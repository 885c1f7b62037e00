"""arrivals: new files in the archive source are downloaded, archived and indexed within seconds
(a watcher in the triggerer polls the source every DOWNLINK_ARRIVALS_POLL_SECONDS). The daily
chain still processes the whole night on its schedule. DOWNLINK_ARRIVALS=false switches it off.
This file only declares; plugins/downlink_airflow/arrivals_dag.py builds the DAG."""
from downlink_airflow.arrivals_dag import build_arrivals_dag
from downlink_airflow.config import Settings
from downlink_airflow.registry import default_path, load_registry

dag = build_arrivals_dag(load_registry(default_path()), Settings.from_env())
