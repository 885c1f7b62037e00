"""Downlink's settings as the DAGs see them: one place, read from the environment (.env via
docker-compose.yaml), each with a default that works in the bundled stack."""
import os
from dataclasses import dataclass, field

# Settings the steps themselves read (thresholds, limits), passed through to step containers.
FORWARDED_PREFIXES = ("DOWNLINK_QC_", "DOWNLINK_MIN_FREE_GB")


@dataclass(frozen=True)
class Settings:
    astro_image: str
    data_volume: str
    network: str
    docker_url: str
    archive_dsn: str
    source: str
    source_mount: str
    chain_schedule: str
    step_env: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        return cls(
            astro_image=env.get("DOWNLINK_ASTRO_IMAGE", "downlink/astro:dev"),
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
        )
