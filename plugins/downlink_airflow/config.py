"""Downlink's settings as the DAGs see them: one place, read from the environment (.env via
docker-compose.yaml), each with a default that works in the bundled stack."""
import os
from dataclasses import dataclass, field

# Settings the steps themselves read (thresholds, limits), passed through to step containers.
FORWARDED_PREFIXES = ("DOWNLINK_QC_", "DOWNLINK_MIN_FREE_GB", "DOWNLINK_FRESHNESS_HOURS",
                      "DOWNLINK_MIN_TRANSFER_RATE", "DOWNLINK_TRANSFER_GRACE_SECONDS")


@dataclass(frozen=True)
class Settings:
    astro_image: str
    image_tag: str
    data_volume: str
    network: str
    docker_url: str
    archive_dsn: str
    source: str
    source_mount: str
    chain_schedule: str
    step_env: dict = field(default_factory=dict)
    # Who is mailed when a step fails (unless its registry entry says otherwise).
    alert_email: tuple = ()
    # The optional nightly digest: one mail per chain run to these addresses (empty: off).
    digest_email: tuple = ()
    diagnostics_schedule: str = "@hourly"
    diagnostics_window_minutes: float = 60
    min_free_gb: float = 1.0
    freshness_hours: float = 36.0
    # A step killed for memory is rerun with twice its limit, up to this ceiling (registry: memory_max).
    memory_ceiling: str = "8g"
    # The most processes (and threads) a step may have: docker-proxy refuses a step without a limit.
    step_pids_limit: int = 1024
    # The archive (raw frames): its own volume so that it can be read-only in most steps ("": a
    # folder of the data volume, writable by every step).
    raw_volume: str = ""
    # The data-arrival trigger (dags/arrivals.py): on/off, how often it polls the source, and how
    # many recent nights it watches.
    arrivals_enabled: bool = True
    arrivals_poll_seconds: float = 5.0
    arrivals_nights: int = 2

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        return cls(
            astro_image=env.get("DOWNLINK_ASTRO_IMAGE", "downlink/astro:dev"),
            # The tag built from git and deployed with the stack (make deploy can roll a newer one).
            image_tag=env.get("DOWNLINK_TAG") or env.get("DOWNLINK_ASTRO_IMAGE", "downlink/astro:dev").rpartition(":")[2],
            data_volume=env.get("DOWNLINK_DATA_VOLUME", "downlink-data"),
            network=env.get("DOWNLINK_NETWORK", "downlink-net"),
            docker_url=env.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
            archive_dsn=env.get("DOWNLINK_ARCHIVE_DSN", ""),
            # A base URL, or a directory inside step containers (mount it with source_mount).
            source=env.get("DOWNLINK_SOURCE", "http://archive-server:8080"),
            # Host directory mounted read-only at /source in step containers (for a local/NFS archive).
            source_mount=env.get("DOWNLINK_SOURCE_MOUNT", ""),
            chain_schedule=env.get("DOWNLINK_CHAIN_SCHEDULE", "0 11 * * *"),
            step_env={k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES) and v},
            alert_email=addresses(env.get("DOWNLINK_ALERT_EMAIL", "downlink-team@localhost")),
            digest_email=addresses(env.get("DOWNLINK_DIGEST_EMAIL", "")),
            diagnostics_schedule=env.get("DOWNLINK_DIAGNOSTICS_SCHEDULE") or "@hourly",
            diagnostics_window_minutes=float(env.get("DOWNLINK_DIAGNOSTICS_WINDOW_MINUTES") or 60),
            min_free_gb=float(env.get("DOWNLINK_MIN_FREE_GB") or 1),
            freshness_hours=float(env.get("DOWNLINK_FRESHNESS_HOURS") or 36),
            memory_ceiling=env.get("DOWNLINK_MEMORY_CEILING") or "8g",
            step_pids_limit=int(positive(env.get("DOWNLINK_STEP_PIDS_LIMIT") or 1024, "DOWNLINK_STEP_PIDS_LIMIT")),
            raw_volume=env.get("DOWNLINK_RAW_VOLUME", ""),
            arrivals_enabled=flag(env.get("DOWNLINK_ARRIVALS", "true"), "DOWNLINK_ARRIVALS"),
            arrivals_poll_seconds=positive(env.get("DOWNLINK_ARRIVALS_POLL_SECONDS") or 5, "DOWNLINK_ARRIVALS_POLL_SECONDS"),
            arrivals_nights=int(positive(env.get("DOWNLINK_ARRIVALS_NIGHTS") or 2, "DOWNLINK_ARRIVALS_NIGHTS")),
        )


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
