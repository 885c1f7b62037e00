"""The Airflow-side checks of the hourly `diagnostics` DAG: Airflow's own components and their
heartbeats, runs that failed, and the step images. (Storage, database and data freshness are
checked in a step container: `downlink health`.)

Each check returns (ok, message); `run_checks` raises one error listing every breach, so the
failure mail says what is wrong and which threshold was crossed.
"""
from datetime import datetime, timedelta, timezone

import requests

from downlink_airflow.config import Settings


class HealthBreach(Exception):
    pass


def _age_seconds(stamp, now):
    if not stamp:
        return None
    return (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()


def components_check(health, now, max_heartbeat_age):
    """Every component healthy, and the scheduler's heartbeat recent."""
    problems = []
    for name, info in sorted(health.items()):
        status = (info or {}).get("status")
        if status != "healthy":
            problems.append(f"{name} is {status or 'unknown'}")
    age = _age_seconds((health.get("scheduler") or {}).get("latest_scheduler_heartbeat"), now)
    if age is None or age > max_heartbeat_age:
        seen = "never" if age is None else f"{age:.0f} s ago"
        problems.append(f"scheduler heartbeat {seen} (threshold DOWNLINK_MAX_HEARTBEAT_AGE={max_heartbeat_age:g} s)")
    if problems:
        return False, "components: " + "; ".join(problems)
    return True, f"components healthy: {', '.join(sorted(health))}; scheduler heartbeat {age:.0f} s ago"


def failed_runs_check(runs, now, window, exclude=("diagnostics",)):
    """Failed runs of the last day; a breach when one ended since the previous check (window),
    so that each failed run is reported once, not every hour for a day."""
    failed = [r for r in runs if r["dag_id"] not in exclude]
    new = [r for r in failed if r.get("end_date") and _age_seconds(r["end_date"], now) <= window.total_seconds()]
    listing = ", ".join(f"{r['dag_id']} {r['dag_run_id']}" for r in new[:10])
    if new:
        return False, (f"failed runs: {len(new)} new since the last check ({listing}); "
                       f"{len(failed)} in the last 24 h")
    return True, f"failed runs: none new; {len(failed)} in the last 24 h"


def images_check(wanted, exists):
    missing = [image for image in wanted if not exists(image)]
    if missing:
        return False, f"step images missing: {', '.join(missing)} (build them: make build; deploy: make deploy)"
    return True, f"step images present: {', '.join(wanted)}"


class AirflowAPI:
    def __init__(self, base_url=None, user=None, password=None, settings=None):
        settings = settings or Settings.from_env()
        self.base_url = (base_url or settings.api_url).rstrip("/")
        self.user = user or settings.admin_user
        self.password = password if password is not None else settings.admin_password
        self._token = None

    def health(self):
        reply = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=30)
        reply.raise_for_status()
        return reply.json()

    def token(self):
        if self._token is None:
            reply = requests.post(f"{self.base_url}/auth/token",
                                  json={"username": self.user, "password": self.password}, timeout=30)
            reply.raise_for_status()
            self._token = reply.json()["access_token"]
        return self._token

    def failed_runs(self, since):
        reply = requests.get(f"{self.base_url}/api/v2/dags/~/dagRuns",
                             params={"state": "failed", "end_date_gte": since.isoformat(), "limit": 100},
                             headers={"Authorization": f"Bearer {self.token()}"}, timeout=30)
        reply.raise_for_status()
        return reply.json()["dag_runs"]


def wanted_images(tag, registry_path=None):
    from downlink_airflow.registry import RegistryError, default_path, load_registry

    images = {f"downlink/astro:{tag}"}
    try:
        for script in load_registry(registry_path or default_path()).scripts:
            if script.image != "astro":
                images.add(script.image)
    except RegistryError:
        pass  # the registry's own problems are reported by registry_check.py
    return sorted(images)


def image_exists(settings):
    import docker

    client = docker.DockerClient(base_url=settings.docker_url)

    def exists(image):
        try:
            client.images.get(image)
            return True
        except docker.errors.ImageNotFound:
            return False
    return exists


def run_checks(tag, window, settings=None, api=None, now=None):
    settings = settings or Settings.from_env()
    api = api or AirflowAPI(settings=settings)
    now = now or datetime.now(timezone.utc)
    max_heartbeat_age = settings.max_heartbeat_age
    results = [
        components_check(api.health(), now, max_heartbeat_age),
        failed_runs_check(api.failed_runs(now - timedelta(days=1)), now, window),
        images_check(wanted_images(tag), image_exists(settings)),
    ]
    for ok, message in results:
        print(f"{'ok    ' if ok else 'BREACH'} {message}")
    breaches = [message for ok, message in results if not ok]
    if breaches:
        raise HealthBreach("; ".join(breaches))
    return [message for _, message in results]
