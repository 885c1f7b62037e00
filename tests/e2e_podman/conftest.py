"""The smoke test on Podman: the e2e fixtures of tests/e2e, on the engine DOCKER_HOST names (Podman's
Docker-compatible API, started by `tools/bootstrap.sh podman`), with a project and ports of its own
so it runs next to the Docker e2e stacks. `make test-podman` sets it all up."""
import importlib.util
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

os.environ.setdefault("DOWNLINK_E2E_PROJECT", "downlink-test-podman")
os.environ.setdefault("DOWNLINK_E2E_WEB_PORT", "18881")
os.environ.setdefault("DOWNLINK_E2E_MAIL_PORT", "18882")
os.environ.setdefault("DOWNLINK_E2E_DB_PORT", "18883")
# No host tmpfs (needs root): nothing here fills the data volume.
os.environ["DOWNLINK_E2E_SMALL_DATA"] = "0"

DOCKER_HOST = os.environ.get("DOCKER_HOST", "")
if not DOCKER_HOST.startswith("unix://"):
    pytest.exit("tests/e2e_podman: DOCKER_HOST must name Podman's socket (run `make test-podman`)", returncode=2)
# The docker-proxy service mounts the engine's socket and reaches it through the socket's group.
os.environ["DOCKER_SOCKET"] = DOCKER_HOST[len("unix://"):]
os.environ["DOCKER_GID"] = str(os.stat(os.environ["DOCKER_SOCKET"]).st_gid)
# Docker's engine, if this host has one: the test shows that nothing of this stack reaches it.
DOCKER_ENGINE = os.environ.get("DOWNLINK_DOCKER_SOURCE", "unix:///var/run/docker.sock")
SESSION_START = int(time.time())

_spec = importlib.util.spec_from_file_location("e2e_base", os.path.join(HERE, "..", "e2e", "conftest.py"))
e2e_base = importlib.util.module_from_spec(_spec)
sys.modules["e2e_base"] = e2e_base
_spec.loader.exec_module(e2e_base)

stack = e2e_base.stack  # the session's stack fixture, as in tests/e2e
sample_night = e2e_base.sample_night
probe_chains = e2e_base.probe_chains


def engine_components(host):
    """The names of the server components the engine at `host` reports ("Podman Engine" ...)."""
    out = subprocess.run(["docker", "-H", host, "version", "--format", "{{range .Server.Components}}{{.Name}};{{end}}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [name for name in out.strip().split(";") if name]
