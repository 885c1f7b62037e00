"""Downlink on Podman (issue 20): the stack comes up healthy on Podman's Docker-compatible API, the
sample night succeeds with every step a container that DockerOperator starts through the
docker-proxy, a step that fails for good sends one mail, and nothing of it reaches a Docker engine."""
import json
import os
import subprocess
import time
import uuid

from conftest import DOCKER_ENGINE, DOCKER_HOST, SESSION_START, engine_components, probe_chains

PROBES = {"podman_probe": [
    {"name": "fails_on_purpose", "command": "echo 'podman: frame 5 unreadable' >&2; exit 4",
     "retries": 0, "email": ["ops@example.org"]},
]}


def test_the_engine_is_podman_and_the_stack_is_healthy(stack):
    assert "Podman Engine" in engine_components(DOCKER_HOST)
    services = stack.services()
    for name in ("postgres", "api-server", "scheduler", "dag-processor", "triggerer", "docker-proxy", "mail", "archive-server"):
        assert services[name]["State"] == "running", (name, services[name])
        assert services[name].get("Health", "healthy") in ("healthy", ""), (name, services[name])
    assert services["airflow-init"]["State"] == "exited" and services["airflow-init"]["ExitCode"] == 0


def reaches(stack, service, host, port=2375):
    """Whether `service` opens a TCP connection to host:port (within 5 s)."""
    probe = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
             "except OSError:\n    print('no')\nelse:\n    print('yes')")
    return stack.compose("exec", "-T", service, "python", "-c", probe, host, str(port)).stdout.strip() == "yes"


def test_only_the_scheduler_reaches_the_docker_proxy(stack):
    """The internal docker-api network works on Podman (netavark), and keeps its isolation: the
    web-facing api-server reaches the proxy neither by name nor by address."""
    address = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                              stack.services()["docker-proxy"]["Name"]], capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    assert address
    assert reaches(stack, "scheduler", "docker-proxy")
    assert not reaches(stack, "api-server", "docker-proxy") and not reaches(stack, "api-server", address)


def test_the_sample_night_succeeds_on_podman(stack, sample_night):
    run_id, state, states = sample_night
    assert state == "success", states
    # Every step succeeded; the watcher (it mails about failures) is skipped when none failed.
    assert states.pop("watcher") == "skipped", states
    assert states and all(s == "success" for s in states.values()), states
    # The steps ran as containers of this engine, started through the docker-proxy.
    log = stack.compose("logs", "--no-color", "docker-proxy").stdout
    assert "ALLOW POST /containers/create" in log or "rule=containers.create" in log, log[-3000:]


def test_a_step_that_fails_for_good_mails_once(stack):
    with probe_chains(stack, PROBES):
        run_id = f"e2e_podman_{uuid.uuid4().hex[:6]}"
        assert stack.run_dag("podman_probe", run_id, timeout=600) == "failed"
        deadline = time.monotonic() + 120
        while not (mails := [m for m in stack.mails() if "podman_probe" in m["subject"]]) and time.monotonic() < deadline:
            time.sleep(2)
    assert len(mails) == 1, [m["subject"] for m in mails]
    assert mails[0]["subject"].startswith("[Downlink] FAILED podman_probe.fails_on_purpose night ")
    assert mails[0]["subject"].endswith("(exit 4)")
    assert "podman: frame 5 unreadable" in mails[0]["html"]


def test_nothing_of_the_stack_reached_docker(stack):
    """Docker's engine (when this host has one) saw no container, volume or network of this project:
    not in its lists, and not in its events since the session started."""
    path = DOCKER_ENGINE[len("unix://"):]
    if not os.path.exists(path):
        return  # no Docker engine at all: nothing could reach it
    project = stack.project

    def docker(*args):
        return subprocess.run(["docker", "-H", DOCKER_ENGINE, *args], capture_output=True, text=True,
                              timeout=120, check=True).stdout

    assert "Podman Engine" not in engine_components(DOCKER_ENGINE)  # it is a different engine
    assert docker("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}").strip() == ""
    assert [v for v in docker("volume", "ls", "-q").split() if v.startswith(project)] == []
    assert [n for n in docker("network", "ls", "--format", "{{.Name}}").split() if n.startswith(project)] == []
    events = docker("events", "--since", str(SESSION_START), "--until", str(int(time.time())), "--format", "{{json .}}")
    ours = [e for e in map(json.loads, events.splitlines())
            if project in json.dumps(e.get("Actor", {}).get("Attributes", {})) or project in e.get("Actor", {}).get("ID", "")]
    assert ours == [], ours[:5]
