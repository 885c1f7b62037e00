"""Airflow-side wiring of a step (runs inside the Airflow image: make test-unit-airflow)."""
import sys

sys.path.insert(0, "/opt/airflow/plugins")

from downlink_airflow.config import Settings  # noqa: E402
from downlink_airflow.steps import DATA_DIR, astro_step  # noqa: E402


def settings():
    return Settings.from_env(
        {
            "DOWNLINK_ASTRO_IMAGE": "downlink/astro:abc",
            "DOWNLINK_DATA_VOLUME": "proj-data",
            "DOWNLINK_NETWORK": "proj-net",
            "DOWNLINK_ARCHIVE_DSN": "postgresql://u:secret@db/archive",
        }
    )


def test_defaults_work_without_configuration():
    cfg = Settings.from_env({})
    assert cfg.astro_image.startswith("downlink/astro:") and cfg.data_volume and cfg.network


def test_astro_step_wires_image_volume_network_and_secrets():
    op = astro_step("t", ["downlink", "versions"], settings=settings())
    assert op.image == "downlink/astro:abc"
    assert op.network_mode == "proj-net"
    assert [(m["Source"], m["Target"], m["Type"]) for m in op.mounts] == [("proj-data", DATA_DIR, "volume")]
    assert op.mount_tmp_dir is False
    assert op._private_environment == {"DOWNLINK_ARCHIVE_DSN": "postgresql://u:secret@db/archive"}
    assert "secret" not in repr(op.environment)
    assert op.environment["DOWNLINK_RUN_ID"] == "{{ run_id }}"


def test_extra_environment_and_operator_arguments_pass_through():
    op = astro_step("t", ["true"], settings=settings(), environment={"A": "1"}, retries=3)
    assert op.environment["A"] == "1" and op.retries == 3


def test_step_thresholds_are_forwarded_but_not_secrets():
    cfg = Settings.from_env({"DOWNLINK_QC_MIN_SOURCES": "9", "DOWNLINK_MIN_FREE_GB": "5", "DOWNLINK_QC_MAX_SKY": "",
                             "DOWNLINK_ARCHIVE_DSN": "postgresql://u:secret@db/a", "DOWNLINK_ADMIN_PASSWORD": "pw"})
    env = astro_step("t", ["true"], settings=cfg).environment
    assert env["DOWNLINK_QC_MIN_SOURCES"] == "9" and env["DOWNLINK_MIN_FREE_GB"] == "5"
    assert "DOWNLINK_QC_MAX_SKY" not in env and "DOWNLINK_ADMIN_PASSWORD" not in env
    assert "secret" not in repr(env)
