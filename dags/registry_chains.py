"""Every chain of the script registry (dags/registry.yaml) as an Airflow DAG: daily_chain,
astro_env_check and the team's own chains. This file only declares; the registry says what runs.

An entry with a problem (unknown field, unknown `after`, cycle, ...) is left out together with
what runs after it, and the rest still loads; registry_check.py shows the problems as an import
error in the UI, and `make check` prints them before a deploy.
"""
from airflow.sdk import get_parsing_context

from downlink_airflow.registry import default_path, load_registry
from downlink_airflow.registry_dags import build_dags

# A task parses this file only to find its own DAG (Airflow's parsing context names it): build that
# chain alone. The dag-processor (no DAG named) builds them all.
globals().update(build_dags(load_registry(default_path()), only=get_parsing_context().dag_id))
