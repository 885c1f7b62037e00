"""dags/pools.json, the one declaration of the Airflow pools (airflow-init imports it): it names
every pool the DAGs put tasks in, in the format `airflow pools import` reads."""
import json
import os

import pytest
from airflow.cli.commands import pool_command

from downlink_airflow import pools
from downlink_airflow.config import Settings
from downlink_airflow.registry import QUEUES
from downlink_airflow.registry_dags import INGEST_POOL

DAGS = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "/opt/airflow/dags")
POOLS = os.path.join(DAGS, "pools.json")


def test_every_pool_the_dags_use_is_declared():
    declared = pools.declared(POOLS, Settings.from_env({}))
    wanted = {INGEST_POOL} | {q for q in QUEUES if q != "default"}
    assert wanted <= set(declared), sorted(wanted - set(declared))
    assert declared[INGEST_POOL]["slots"] == 1  # ingest steps never run at once
    assert declared["heavy"]["slots"] == 2


def test_the_file_is_what_airflow_pools_import_reads(tmp_path, monkeypatch):
    # Airflow's own importer, with its API client replaced: every pool is taken, none refused.
    out = tmp_path / "pools.json"
    assert pools.main([POOLS, str(out)]) == 0
    made = []

    class Client:
        def create_pool(self, **kw):
            made.append(kw)
            return kw

    monkeypatch.setattr(pool_command, "get_current_api_client", Client)
    _, failed = pool_command.pool_import_helper(str(out))
    assert failed == [] and {kw["name"] for kw in made} == set(json.loads(out.read_text()))
    assert {kw["name"]: kw["slots"] for kw in made} == {"heavy": 2, INGEST_POOL: 1}


def test_heavy_slots_override_and_bad_values():
    assert pools.declared(POOLS, Settings.from_env({"DOWNLINK_HEAVY_SLOTS": "5"}))["heavy"]["slots"] == 5
    assert pools.declared(POOLS, Settings.from_env({"DOWNLINK_HEAVY_SLOTS": ""}))["heavy"]["slots"] == 2
    with pytest.raises(ValueError, match="DOWNLINK_HEAVY_SLOTS='lots'"):
        pools.declared(POOLS, Settings.from_env({"DOWNLINK_HEAVY_SLOTS": "lots"}))
