"""Downlink's settings as the Airflow side sees them: the one place every DOWNLINK_* variable of
plugins/ and dags/ is read, each with its one default (docs/configuration.md lists them; a unit
test checks the two agree).

Each field names its environment variable, its default and what it means. As in compose's
`${X:-default}`, an empty value counts as unset (the stack passes .env through unchanged, so a
line `X=` in .env gives the default, as it always did).
"""
import os
import re
from dataclasses import dataclass, field, fields
from datetime import timedelta

# Settings the steps themselves read (thresholds, limits), passed through to step containers.
# DOWNLINK_KEEP_*: housekeeping's limits (the step reads those of the data volume).
FORWARDED_PREFIXES = ("DOWNLINK_QC_", "DOWNLINK_MIN_FREE_GB", "DOWNLINK_FRESHNESS_HOURS",
                      "DOWNLINK_MIN_TRANSFER_RATE", "DOWNLINK_TRANSFER_GRACE_SECONDS", "DOWNLINK_KEEP_")


def addresses(text):
    """'a@x, b@y' -> ('a@x', 'b@y')"""
    return tuple(a.strip() for a in (text or "").replace(";", ",").split(",") if a.strip())


def flag(text, name):
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name}={text!r}: expected true or false")


def positive(text, name):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a number") from None
    if value <= 0:
        raise ValueError(f"{name}={text!r}: must be more than 0")
    return value


def _text(text, name):
    return text


def _number(text, name):
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a number") from None


def _count(text, name):
    return int(positive(text, name))


def _addresses(text, name):
    return addresses(text)


DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def duration(text, name):
    """'6h' -> timedelta(hours=6): a whole number with s, m, h or d, or plain seconds (the
    registry's retry_delay and timeout read the same way)."""
    match = DURATION.match(str(text))
    if not match:
        raise ValueError(f"{name}={text!r}: expected a duration (e.g. 90s, 30m, 6h, 1d, or seconds)")
    number, unit = int(match.group(1)), match.group(2) or "s"
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: number})


def slots(text, name):
    """'' -> None (as declared); else a whole number >= 0. Checked where it is used
    (downlink_airflow.pools, at airflow-init), so a bad value does not stop every DAG file."""
    if text == "":
        return None
    if not text.strip().isdigit():
        raise ValueError(f"{name}={text!r}: expected a whole number of slots")
    return int(text)


def setting(env, default, doc, parse=_text):
    """A field read from the environment variable `env`; `default` is the variable's text when
    unset (parsed like any other value), `doc` what it means."""
    return field(default=parse(default, env), metadata={"env": env, "default": default, "doc": doc, "parse": parse})


@dataclass(frozen=True)
class Settings:
    astro_image: str = setting("DOWNLINK_ASTRO_IMAGE", "downlink/astro:dev", "the step image (the stack sets downlink/astro:$DOWNLINK_TAG)")
    # The tag built from git and deployed with the stack (make deploy can roll a newer one);
    # unset: the astro image's tag.
    image_tag: str = setting("DOWNLINK_TAG", "", "the image tag the stack runs (the git commit; set by make build / make env)")
    data_volume: str = setting("DOWNLINK_DATA_VOLUME", "downlink-data", "the data volume (/data in steps); the stack sets <project>-data")
    network: str = setting("DOWNLINK_NETWORK", "downlink-net", "the network steps join; the stack sets <project>-net")
    docker_url: str = setting("DOCKER_HOST", "unix:///var/run/docker.sock", "the Docker engine DockerOperator talks to (the stack: docker-proxy)")
    archive_dsn: str = setting("DOWNLINK_ARCHIVE_DSN", "", "the archive database, handed to steps privately (the stack builds it from ARCHIVE_DB_PASSWORD)")
    # A base URL, or a directory inside step containers (mount it with source_mount).
    source: str = setting("DOWNLINK_SOURCE", "http://archive-server:8080", "where nights are downloaded from: a base URL or a directory")
    source_mount: str = setting("DOWNLINK_SOURCE_MOUNT", "", "host directory mounted read-only at /source in steps")
    chain_schedule: str = setting("DOWNLINK_CHAIN_SCHEDULE", "0 11 * * *", "when daily_chain runs (cron, UTC)")
    # Who is mailed when a step fails (unless its registry entry says otherwise).
    alert_email: tuple = setting("DOWNLINK_ALERT_EMAIL", "downlink-team@localhost",
                                 "the team list: who is mailed when a step fails (comma-separated; a registry entry's email overrides it)",
                                 _addresses)
    # A step that stays failed is mailed again at most this often (alert_throttle; 0: never again).
    alert_repeat: timedelta = setting("DOWNLINK_ALERT_REPEAT", "6h",
                                      "a step that keeps failing mails once, then at most one reminder per this long while it stays "
                                      "failed (e.g. 30m, 6h, 1d, or seconds; 0: no reminders), and once when it recovers", duration)
    # The optional nightly digest: one mail per chain run to these addresses (empty: off).
    digest_email: tuple = setting("DOWNLINK_DIGEST_EMAIL", "", "who gets one summary mail per chain run (empty: off)", _addresses)
    diagnostics_schedule: str = setting("DOWNLINK_DIAGNOSTICS_SCHEDULE", "@hourly", "when the diagnostics DAG checks the stack")
    diagnostics_window_minutes: float = setting("DOWNLINK_DIAGNOSTICS_WINDOW_MINUTES", "60",
                                                "diagnostics report runs that failed within this many minutes", _number)
    min_free_gb: float = setting("DOWNLINK_MIN_FREE_GB", "1", "diagnostics fail below this much free space on the data, archive and database volumes",
                                 _number)
    freshness_hours: float = setting("DOWNLINK_FRESHNESS_HOURS", "36", "diagnostics fail when no new frame was indexed for this long (0: off)", _number)
    max_heartbeat_age: float = setting("DOWNLINK_MAX_HEARTBEAT_AGE", "120", "diagnostics fail when the scheduler's heartbeat is older (seconds)", _number)
    # A step killed for memory is rerun with twice its limit, up to this ceiling (registry: memory_max).
    memory_ceiling: str = setting("DOWNLINK_MEMORY_CEILING", "8g",
                                  "a step killed for memory is rerun with twice its memory, up to this (an entry's memory_max overrides it)")
    # The most processes (and threads) a step may have: docker-proxy refuses a step without a limit.
    # The pools are declared in dags/pools.json (downlink_airflow.pools); this overrides one.
    heavy_slots: str = setting("DOWNLINK_HEAVY_SLOTS", "",
                                      "slots of the Airflow pool heavy: how many heavy steps (registry queue: heavy) run at once, whatever the "
                                      "executor (empty: as dags/pools.json declares, 2)")
    step_pids_limit: int = setting("DOWNLINK_STEP_PIDS_LIMIT", "1024", "the most processes (and threads) a step container may have", _count)
    # The archive (raw frames): its own volume so that it can be read-only in most steps ("": a
    # folder of the data volume, writable by every step).
    raw_volume: str = setting("DOWNLINK_RAW_VOLUME", "",
                              "the archive volume (/data/raw in steps; empty: a folder of the data volume); the stack sets <project>-raw")
    # The data-arrival trigger (dags/arrivals.py): on/off, how often it polls the source, and how
    # many recent nights it watches.
    arrivals_enabled: bool = setting("DOWNLINK_ARRIVALS", "true", "ingest new files as they arrive; false switches the watcher and the arrivals DAG off", flag)
    arrivals_poll_seconds: float = setting("DOWNLINK_ARRIVALS_POLL_SECONDS", "5", "how often the arrivals watcher reads the source's manifests", positive)
    arrivals_nights: int = setting("DOWNLINK_ARRIVALS_NIGHTS", "2", "how many recent nights the watcher follows (the current one and the one before)", _count)
    # The scheduler's LocalExecutor (downlink_airflow.executor): how long a scheduler loop waits for
    # a running task to end before it goes on (it wakes at once when one does).
    task_end_wait: float = setting("DOWNLINK_TASK_END_WAIT", "1",
                                   "LocalExecutor: seconds a scheduler loop waits for a running task to end, waking at once when one does "
                                   "(the next step then starts without polling; 0: Airflow's polling every DOWNLINK_SCHEDULER_IDLE_SLEEP)",
                                   _number)
    # The stack's own admin account (airflow-init keeps it in step; diagnostics reads the API as it).
    admin_user: str = setting("DOWNLINK_ADMIN_USER", "admin", "name of the stack's own admin web account")
    admin_password: str = setting("DOWNLINK_ADMIN_PASSWORD", "", "its password (generated into .env by make env)")
    users_file: str = setting("DOWNLINK_USERS_FILE", "/opt/airflow/accounts/users", "the web accounts' users file (on the accounts volume)")
    reports_dir: str = setting("DOWNLINK_REPORTS_DIR", "/data/reports", "where the reports plugin finds the nightly reports")
    api_url: str = setting("DOWNLINK_API_URL", "http://api-server:8080", "the Airflow API the diagnostics read")
    # Empty: registry.yaml in Airflow's DAG folder.
    registry: str = setting("DOWNLINK_REGISTRY", "", "the script registry file (empty: registry.yaml in the DAG folder)")
    # Host folders the registry's `mounts:` may bind into steps; docker-proxy reads the same list.
    allowed_mounts: str = setting("DOWNLINK_ALLOWED_MOUNTS", "",
                                  "host folders registry entries may mount (mounts:), separated by , or : (empty: none); "
                                  "never /, the Docker socket, /etc, /var/lib/docker, /proc, /sys, /dev")
    # The registry's `secrets:` are files here; the same absolute path on the host and in the
    # Airflow containers, since it is also the bind source of the step's /run/secrets/NAME.
    secrets_dir: str = setting("DOWNLINK_SECRETS_DIR", "",
                               "host folder of the registry's secrets: files (owned 1000:0, 0750 folder, 0640 files, outside git; "
                               "make env sets <checkout>/secrets)")
    # Housekeeping (dags/housekeeping.py): what Airflow and the mail catcher keep. The data
    # volume's limits (DOWNLINK_KEEP_SCRATCH/STAGING/QUARANTINE_DAYS) are the step's settings.
    housekeeping_schedule: str = setting("DOWNLINK_HOUSEKEEPING_SCHEDULE", "0 12 * * *", "when the housekeeping DAG prunes (cron, UTC)")
    keep_metadata_days: float = setting("DOWNLINK_KEEP_METADATA_DAYS", "90",
                                        "housekeeping: `airflow db clean` drops Airflow's metadata rows (runs, task instances, logs, XComs) "
                                        "older than this", positive)
    keep_log_days: float = setting("DOWNLINK_KEEP_LOG_DAYS", "30", "housekeeping deletes Airflow task log files older than this", positive)
    keep_mail_days: float = setting("DOWNLINK_KEEP_MAIL_DAYS", "30", "housekeeping deletes the mail catcher's mails older than this", positive)
    # Airflow 3 hides AIRFLOW__DATABASE__SQL_ALCHEMY_CONN from tasks; db clean needs it.
    metadata_db_conn: str = setting("DOWNLINK_METADATA_DB_CONN", "",
                                    "Airflow's metadata database, for housekeeping's `airflow db clean` in a task (the stack sets it "
                                    "to AIRFLOW__DATABASE__SQL_ALCHEMY_CONN; empty: metadata is not cleaned)")
    mail_api_url: str = setting("DOWNLINK_MAIL_API_URL", "http://mail:1080",
                                "the mail catcher's (MailDev's) REST API housekeeping prunes (empty or not answering: skipped)")
    step_env: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            if "env" in f.metadata:
                text = env.get(f.metadata["env"]) or f.metadata["default"]
                values[f.name] = f.metadata["parse"](text, f.metadata["env"])
        values["image_tag"] = values["image_tag"] or values["astro_image"].rpartition(":")[2]
        values["step_env"] = {k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES) and v}
        return cls(**values)


def variables():
    """{variable: (default text, meaning)} of every setting above (docs/configuration.md)."""
    return {f.metadata["env"]: (f.metadata["default"], f.metadata["doc"]) for f in fields(Settings) if "env" in f.metadata}
