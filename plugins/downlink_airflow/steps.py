"""`astro_step`: a pipeline step as a DockerOperator in the astro image, with Downlink's wiring
(data volume, network, database credentials, run identity) so that a DAG declares a step in one
call."""
import hashlib
import re

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk.exceptions import AirflowFailException
from docker import errors as docker_errors
from docker.types import Mount

from downlink_airflow.config import Settings

DATA_DIR = "/data"
RAW_DIR = DATA_DIR + "/raw"  # the archive: its own volume, mounted over the data volume's raw/
SOURCE_DIR = "/source"
# Per-run scratch space on the data volume, shared by the steps of one DAG run.
RUN_DIR = DATA_DIR + "/work/{{ dag.dag_id }}/{{ run_id }}"
# The night a run processes: `--conf '{"night": "YYYY-MM-DD"}'` (or the UI form), else the night
# that began the day before the run (a run at 11:00 UTC processes last night).
NIGHT = ("{{ (dag_run.conf or {}).get('night') or params.night"
         " or (dag_run.run_after - macros.timedelta(days=1)).strftime('%Y-%m-%d') }}")


MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_bytes(size):
    """'512m' -> 536870912; ints pass through; None stays None."""
    if size is None or isinstance(size, int):
        return size
    text = str(size).strip().lower()
    unit = text[-1] if text[-1:] in MEMORY_UNITS else ""
    return int(float(text[: len(text) - len(unit)]) * MEMORY_UNITS[unit])


def show_bytes(n):
    for unit in ("g", "m", "k"):
        if n % MEMORY_UNITS[unit] == 0:
            return f"{n // MEMORY_UNITS[unit]}{unit}"
    return str(n)


class StepOutOfMemory(AirflowFailException):
    """The container was killed for memory at the memory ceiling: retrying cannot help, so the
    task fails at once (and mails) instead of using Airflow's retries."""

    def __init__(self, message, logs=None):
        super().__init__(message)
        self.logs = logs or []
        self.reason = message


class StepClient:
    """The docker APIClient with the host settings DockerOperator has no argument for (a PID
    limit): added to every create_host_config call, everything else passed through."""

    def __init__(self, api, **host_settings):
        self._api = api
        self._host_settings = host_settings

    def create_host_config(self, *args, **kwargs):
        return self._api.create_host_config(*args, **{**self._host_settings, **kwargs})

    def __getattr__(self, name):
        return getattr(self._api, name)


class StepOperator(DockerOperator):
    """DockerOperator with what a step needs beyond running a container:

    - out of memory is reported as such (the engine's OOMKilled flag), and the step is rerun at
      once with twice the memory, rung by rung, up to `memory_ceiling` (STScI's calcloud does the
      same one rung up); at the ceiling it fails with an out-of-memory error, without retries;
    - with `stderr_callback` (the registry's `warn_on_stderr`), what a successful container wrote
      to stderr is read and handed to the callback: cron mailed whatever a job printed.
    - `pids_limit`: the most processes the container may have (docker-proxy requires one).
    - `secret_files`: the registry's secrets of this step (mounted by the caller): each file is read
      here and its value registered with Airflow's secrets masker before the container starts, so
      the container's log, relayed into the task log, shows *** instead.
    The container is kept until it has been inspected, then removed, whatever happened.
    """

    def __init__(self, *, stderr_callback=None, memory_ceiling=None, pids_limit=None, secret_files=(), **kwargs):
        super().__init__(**kwargs)
        self.stderr_callback = stderr_callback
        self.memory_ceiling = memory_ceiling
        self.pids_limit = pids_limit
        self.secret_files = tuple(secret_files)

    def mask_secrets(self):
        """Register every secret's value with the masker; a secret that cannot be read fails the
        task before anything runs (a step without its secret would fail later, less clearly)."""
        from downlink_airflow.secret_masking import mask

        for path in self.secret_files:
            try:
                with open(path, encoding="utf-8") as fh:
                    value = fh.read()
            except OSError as exc:
                raise AirflowFailException(f"secret {path}: {exc.strerror}: the step needs it (make check names it)") from exc
            except UnicodeDecodeError as exc:
                # A value the masker cannot match in the log's text is a secret it cannot hide.
                raise AirflowFailException(f"secret {path} is not UTF-8 text, so it could not be masked in logs") from exc
            mask(value)

    @property
    def cli(self):
        api = super().cli
        return StepClient(api, pids_limit=self.pids_limit) if self.pids_limit else api

    def _remove(self):
        if getattr(self, "container", None):
            try:
                self.cli.remove_container(self.container["Id"], force=True)
            except Exception:  # already gone; nothing to keep
                self.log.debug("container %s already removed", self.container["Id"])
            self.container = None

    def _oom_killed(self):
        try:
            return bool(self.cli.inspect_container(self.container["Id"])["State"].get("OOMKilled"))
        except Exception:
            return False

    def next_rung(self):
        """Twice the current limit, capped at the ceiling; None when there is no rung left."""
        limit, ceiling = parse_bytes(self.mem_limit), parse_bytes(self.memory_ceiling)
        if limit is None or ceiling is None or limit >= ceiling:
            return None
        return min(limit * 2, ceiling)

    @staticmethod
    def container_name_for(ti):
        """One name per task instance, the same for every try: a retry finds what an earlier try
        left running when its worker was lost (scheduler killed, host rebooted)."""
        run = hashlib.sha1(ti.run_id.encode()).hexdigest()[:12]
        index = f"-{ti.map_index}" if getattr(ti, "map_index", -1) not in (None, -1) else ""
        return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"downlink-{ti.dag_id}-{ti.task_id}{index}-{run}")

    def adopt_orphan(self):
        """If an earlier try's container is still there, finish with it instead of starting the
        step a second time: wait for it if it runs; a clean exit is this try's success (the
        step's effect happened once). Returns (True, result) when adopted, (False, None) else."""
        try:
            info = self.cli.inspect_container(self.container_name)
        except docker_errors.NotFound:
            return False, None
        self.container = {"Id": info["Id"]}
        if info["State"].get("Running"):
            self.log.warning("container %s of an earlier try is still running (its worker was lost): "
                             "waiting for it instead of starting the step again", self.container_name)
            code = self.cli.wait(self.container["Id"])["StatusCode"]
        else:
            code = info["State"].get("ExitCode")
        lines = (self.cli.logs(self.container["Id"]) or b"").decode("utf-8", "replace").splitlines()
        for line in lines:
            self.log.info("%s", line)
        self._remove()
        if code == 0:
            self.log.warning("the earlier try's container finished successfully: not running the step again")
            return True, (lines[-1] if lines and self.do_xcom_push else None)
        self.log.warning("the earlier try's container ended with exit code %s: running the step again", code)
        return False, None

    def execute(self, context):
        self.auto_remove = "never"  # inspected (OOM, stderr) before it is removed, below
        self.container_name = self.container_name_for(context["ti"])
        self.mask_secrets()  # before any container output reaches the log (an adopted one too)
        adopted, result = self.adopt_orphan()
        if adopted:
            return result
        while True:
            self.container = None
            try:
                result = super().execute(context)
            except DockerContainerFailedException as exc:
                oom = self.container is not None and self._oom_killed()
                self._remove()
                if not oom:
                    raise
                limit = self.mem_limit and show_bytes(parse_bytes(self.mem_limit))
                rung = self.next_rung()
                if rung is None:
                    raise StepOutOfMemory(
                        f"Docker container failed: {{'StatusCode': 137}} -- out of memory: killed at its memory "
                        f"limit {limit or '(none: the host ran out)'}"
                        + (f", the ceiling {show_bytes(parse_bytes(self.memory_ceiling))}" if self.memory_ceiling else ""),
                        logs=exc.logs) from exc
                self.log.warning("out of memory at %s: running the step again with %s", limit, show_bytes(rung))
                self.mem_limit = rung
                continue
            except BaseException:
                self._remove()
                raise
            stderr = b""
            if self.stderr_callback is not None:
                stderr = self.cli.logs(self.container["Id"], stdout=False, stderr=True) or b""
            self._remove()
            break
        lines = stderr.decode("utf-8", "replace").splitlines()
        if lines:
            self.log.warning("the step succeeded but wrote %d line(s) to stderr: sending a warning", len(lines))
            context["downlink_stderr"] = lines
            self.stderr_callback(context)
        return result


def astro_step(task_id, command, *, image=None, environment=None, settings=None, extra_mounts=(),
               writes_archive=False, **kwargs):
    """A DockerOperator running `command` (a list of arguments, Jinja-templated) in the astro image.
    The archive (raw/, its own volume) is read-only unless `writes_archive` (the archive step).
    `extra_mounts`: docker.types.Mount binds of the registry's mounts: and secrets: (checked by
    downlink_airflow.host_mounts; docker-proxy refuses any bind outside its allow-lists)."""
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
    if cfg.raw_volume:
        mounts.append(Mount(target=RAW_DIR, source=cfg.raw_volume, type="volume", read_only=not writes_archive))
    if cfg.source_mount:
        mounts.append(Mount(target=SOURCE_DIR, source=cfg.source_mount, type="bind", read_only=True))
    mounts.extend(extra_mounts)
    # docker-proxy refuses a step without memory and PID limits: no memory in the registry means
    # the ceiling (no rerun rung above it).
    kwargs["mem_limit"] = kwargs.get("mem_limit") or cfg.memory_ceiling
    kwargs.setdefault("pids_limit", cfg.step_pids_limit)
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
