"""`astro_step`: a pipeline step as a DockerOperator in the astro image, with Downlink's wiring
(data volume, network, database credentials, run identity) so that a DAG declares a step in one
call."""
from docker.types import Mount

from airflow.providers.docker.operators.docker import DockerOperator
from downlink_airflow.config import Settings

DATA_DIR = "/data"
SOURCE_DIR = "/source"
# Per-run scratch space on the data volume, shared by the steps of one DAG run.
RUN_DIR = DATA_DIR + "/work/{{ dag.dag_id }}/{{ run_id }}"
# The night a run processes: `--conf '{"night": "YYYY-MM-DD"}'` (or the UI form), else the night
# that began the day before the run (a run at 11:00 UTC processes last night).
NIGHT = ("{{ (dag_run.conf or {}).get('night') or params.night"
         " or (dag_run.run_after - macros.timedelta(days=1)).strftime('%Y-%m-%d') }}")


class StepOperator(DockerOperator):
    """DockerOperator that, when asked (`warn_on_stderr` in the registry), reads what a successful
    container wrote to stderr and calls `stderr_callback` with it: cron mailed whatever a job
    printed, and some teams rely on that for warnings."""

    def __init__(self, *, stderr_callback=None, **kwargs):
        super().__init__(**kwargs)
        self.stderr_callback = stderr_callback

    def execute(self, context):
        if self.stderr_callback is None:
            return super().execute(context)
        self.auto_remove = "never"  # keep the container until its stderr has been read
        stderr = b""
        try:
            result = super().execute(context)
            stderr = self.cli.logs(self.container["Id"], stdout=False, stderr=True) or b""
        finally:
            if getattr(self, "container", None):
                self.cli.remove_container(self.container["Id"], force=True)
        lines = stderr.decode("utf-8", "replace").splitlines()
        if lines:
            self.log.warning("the step succeeded but wrote %d line(s) to stderr: sending a warning", len(lines))
            context["downlink_stderr"] = lines
            self.stderr_callback(context)
        return result


def astro_step(task_id, command, *, image=None, environment=None, settings=None, extra_mounts=(), **kwargs):
    """A DockerOperator running `command` (a list of arguments, Jinja-templated) in the astro image."""
    cfg = settings or Settings.from_env()
    env = {
        "DOWNLINK_DAG_ID": "{{ dag.dag_id }}",
        "DOWNLINK_RUN_ID": "{{ run_id }}",
        "DOWNLINK_TASK_ID": task_id,
        "DOWNLINK_SOURCE": cfg.source,
        **cfg.step_env,
    }
    env.update(environment or {})
    mounts = [Mount(target=DATA_DIR, source=cfg.data_volume, type="volume")]
    if cfg.source_mount:
        mounts.append(Mount(target=SOURCE_DIR, source=cfg.source_mount, type="bind", read_only=True))
    mounts.extend(extra_mounts)
    return StepOperator(
        task_id=task_id,
        image=image or cfg.astro_image,
        command=command,
        environment=env,
        # Not templated nor rendered in the UI: credentials stay out of logs.
        private_environment={"DOWNLINK_ARCHIVE_DSN": cfg.archive_dsn},
        docker_url=cfg.docker_url,
        network_mode=cfg.network,
        mounts=mounts,
        # Airflow itself runs in a container, so its temporary directory cannot be bind-mounted
        # into a sibling container.
        mount_tmp_dir=False,
        auto_remove="success",
        **kwargs,
    )
