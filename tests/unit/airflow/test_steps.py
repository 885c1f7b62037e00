"""Airflow-side wiring of a step (runs inside the Airflow image: make test-unit-airflow)."""


from downlink_airflow.config import Settings  # noqa: E402
from downlink_airflow.steps import DATA_DIR, RAW_DIR, astro_step  # noqa: E402


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


# --- out of memory: reported as such, rerun one rung up, failed at the ceiling ---------------
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
from airflow.providers.docker.exceptions import DockerContainerFailedException  # noqa: E402
from airflow.providers.docker.operators.docker import DockerOperator  # noqa: E402

from downlink_airflow import steps  # noqa: E402


def test_memory_sizes_parse_and_print():
    assert steps.parse_bytes("512m") == 512 * 1024 ** 2 and steps.parse_bytes("2G") == 2 * 1024 ** 3
    assert steps.show_bytes(steps.parse_bytes("1536m")) == "1536m" and steps.show_bytes(2 * 1024 ** 3) == "2g"


TI = SimpleNamespace(dag_id="night", task_id="heavy", run_id="manual__2026-11-25T14:00:00+00:00", map_index=-1)
CONTEXT = {"ti": TI}


class FakeCli:
    def __init__(self, oom_until, orphan=None):
        self.oom_until, self.runs, self.removed, self.orphan = oom_until, [], [], orphan

    def inspect_container(self, cid):
        if cid.startswith("downlink-"):  # looked up by name: an earlier try's container?
            if self.orphan is None:
                import docker.errors
                raise docker.errors.NotFound("no such container")
            return {"Id": "orphan", "State": self.orphan}
        return {"State": {"OOMKilled": True}}

    def wait(self, cid):
        return {"StatusCode": self.orphan["ExitCode"]}

    def remove_container(self, cid, force=False):
        self.removed.append(cid)

    def logs(self, cid, stdout=True, stderr=True):
        return b"earlier output\nlast line\n" if cid == "orphan" else b""


@pytest.fixture
def ladder(monkeypatch):
    """A StepOperator whose container runs out of memory below `oom_until` bytes."""
    def make(memory, ceiling, oom_until, orphan=None):
        op = astro_step("heavy", ["reduce"], settings=settings(), mem_limit=memory, memory_ceiling=ceiling)
        cli = FakeCli(oom_until, orphan)
        monkeypatch.setattr(type(op), "cli", property(lambda self: cli))

        def fake_execute(self, context):
            limit = steps.parse_bytes(self.mem_limit)
            self.container = {"Id": f"c{len(cli.runs)}"}
            cli.runs.append(limit)
            if limit < cli.oom_until:
                raise DockerContainerFailedException("Docker container failed: {'StatusCode': 137}", logs=["allocating"])
            return "done"
        monkeypatch.setattr(DockerOperator, "execute", fake_execute)
        return op, cli
    return make


def test_out_of_memory_reruns_one_rung_up_until_it_fits(ladder):
    op, cli = ladder("64m", "512m", 200 * 1024 ** 2)
    assert op.execute(CONTEXT) == "done"
    assert [steps.show_bytes(n) for n in cli.runs] == ["64m", "128m", "256m"]
    assert cli.removed == ["c0", "c1", "c2"]  # every container removed, failed or not


def test_out_of_memory_at_the_ceiling_fails_without_retries_and_says_so(ladder):
    from airflow.sdk.exceptions import AirflowFailException

    from downlink_airflow.alerts import describe_failure

    op, cli = ladder("64m", "128m", 10 ** 12)
    with pytest.raises(steps.StepOutOfMemory) as err:
        op.execute(CONTEXT)
    assert isinstance(err.value, AirflowFailException)  # no Airflow retry: it cannot fit
    assert [steps.show_bytes(n) for n in cli.runs] == ["64m", "128m"]
    code, reason, tail = describe_failure(err.value)
    assert code == "137"
    assert "out of memory: killed at its memory limit 128m, the ceiling 128m" in reason and tail == ["allocating"]


def test_other_failures_are_not_retried_in_place(ladder, monkeypatch):
    op, cli = ladder("64m", "1g", 0)
    original = FakeCli.inspect_container
    monkeypatch.setattr(FakeCli, "inspect_container", lambda self, cid: original(self, cid) if cid.startswith("downlink-")
                        else {"State": {"OOMKilled": False}})

    def failing(self, context):
        self.container = {"Id": "x"}
        cli.runs.append(1)
        raise DockerContainerFailedException("Docker container failed: {'StatusCode': 1}", logs=["boom"])
    monkeypatch.setattr(DockerOperator, "execute", failing)
    with pytest.raises(DockerContainerFailedException):
        op.execute(CONTEXT)
    assert cli.runs == [1] and cli.removed == ["x"]


def test_container_names_are_stable_per_task_instance_and_valid():
    name = steps.StepOperator.container_name_for(TI)
    assert name == steps.StepOperator.container_name_for(TI)
    assert name.startswith("downlink-night-heavy-") and all(c.isalnum() or c in "_.-" for c in name)


def test_an_orphan_that_finished_well_is_this_try_s_success(ladder):
    """The worker was lost while the container ran; it finished: the step must not run twice."""
    op, cli = ladder("64m", "1g", 0, orphan={"Running": True, "ExitCode": 0})
    assert op.execute(CONTEXT) == "last line"
    assert cli.runs == [] and cli.removed == ["orphan"]


def test_an_orphan_that_failed_is_removed_and_the_step_runs_again(ladder):
    op, cli = ladder("64m", "1g", 0, orphan={"Running": False, "ExitCode": 1})
    assert op.execute(CONTEXT) == "done"
    assert len(cli.runs) == 1 and cli.removed == ["orphan", "c0"]


def test_the_archive_volume_is_read_only_unless_the_step_writes_it():
    cfg = Settings.from_env({"DOWNLINK_DATA_VOLUME": "proj-data", "DOWNLINK_RAW_VOLUME": "proj-raw"})
    reader = astro_step("r", ["true"], settings=cfg)
    writer = astro_step("w", ["true"], settings=cfg, writes_archive=True)
    assert [(m["Source"], m["Target"], m.get("ReadOnly", False)) for m in reader.mounts] == [
        ("proj-data", DATA_DIR, False), ("proj-raw", RAW_DIR, True)]
    assert [(m["Source"], m.get("ReadOnly", False)) for m in writer.mounts] == [("proj-data", False), ("proj-raw", False)]


def test_every_step_has_memory_and_pid_limits():
    """docker-proxy refuses a container without them (issue 13)."""
    import docker

    from downlink_airflow.steps import StepClient
    op = astro_step("t", ["true"], settings=settings())
    assert op.mem_limit == settings().memory_ceiling and op.pids_limit == 1024
    op = astro_step("t", ["true"], settings=settings(), mem_limit="512m")
    assert op.mem_limit == "512m"
    assert Settings.from_env({"DOWNLINK_STEP_PIDS_LIMIT": "64"}).step_pids_limit == 64
    # the host config docker-py builds for DockerOperator then carries the PID limit
    api = docker.APIClient(base_url="tcp://127.0.0.1:9", version="1.41")
    hc = StepClient(api, pids_limit=1024).create_host_config(mem_limit="64m", network_mode="proj-net")
    assert hc["PidsLimit"] == 1024 and hc["Memory"] == 64 * 1024 ** 2
