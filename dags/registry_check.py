"""Shows the script registry's problems (dags/registry.yaml) as an import error of this file in
the Airflow UI. It defines no DAG on purpose: when it fails, no chain goes with it (the chains
are built by registry_chains.py, which leaves out only the broken entries)."""
from downlink_airflow.registry import default_path, load_registry

load_registry(default_path()).check()
