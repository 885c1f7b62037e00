"""Airflow-side helpers shared by Downlink's DAGs (the DAG files only declare; this wires)."""
