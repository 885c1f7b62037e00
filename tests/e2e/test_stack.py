"""The stack as `make up` brings it: healthy services, login, mail catcher, database access."""
import os
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, dagrun

LONG_RUNNING = ("postgres", "api-server", "scheduler", "dag-processor", "triggerer", "mail", "docker-proxy")


def test_every_service_is_healthy_and_init_finished(stack):
    services = stack.services()
    for name in LONG_RUNNING:
        assert services[name]["Health"] == "healthy", f"{name}: {services[name]}"
    assert services["airflow-init"]["State"] == "exited" and services["airflow-init"]["ExitCode"] == 0


def test_published_ports_are_bound_to_loopback(stack):
    for name, svc in stack.services().items():
        for pub in svc.get("Publishers") or []:
            if pub.get("PublishedPort"):
                assert pub["URL"] in ("127.0.0.1", ""), f"{name} publishes on {pub['URL']}"


def test_generated_admin_login_works_and_a_wrong_one_is_refused(stack):
    assert stack.api.get("/api/v2/dags?limit=1")["total_entries"] >= 1
    wrong = dagrun.AirflowAPI(base_url=stack.web_url, password="not-the-password")
    with pytest.raises(urllib.error.HTTPError) as exc:
        wrong.token()
    assert exc.value.code in (401, 403)


def test_mail_catcher_answers(stack):
    with urllib.request.urlopen(stack.mail_url + "/email", timeout=10) as resp:
        assert resp.status == 200


def test_science_database_has_q3c_and_pgsphere(stack):
    with stack.archive_db() as conn:
        names = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        assert {"q3c", "pg_sphere"} <= names
        # q3c answers a cone search (a point 1 arcsec away is within 2 arcsec)
        assert conn.execute("SELECT q3c_join(10.0, 20.0, 10.0, 20.0 + 1/3600.0, 2/3600.0)").fetchone()[0]


def test_secrets_are_generated_and_untracked(stack):
    env_file = os.path.join(ROOT, ".env")
    assert os.stat(env_file).st_mode & 0o077 == 0, ".env must be readable by its owner only"
    tracked = subprocess.run(["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == ""
    assert len(dagrun.setting("DOWNLINK_ADMIN_PASSWORD")) >= 20


def test_bootstrap_is_quiet_when_everything_is_there():
    out = subprocess.run([os.path.join(ROOT, "tools", "bootstrap.sh"), "all"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""


TRY_TO_START_A_CONTAINER = r"""
import os, sys
import docker
image = sys.argv[1]
print("socket present" if os.path.exists("/var/run/docker.sock") else "no socket")
for url in ("unix:///var/run/docker.sock", "tcp://docker-proxy:2375"):
    try:
        docker.DockerClient(base_url=url, timeout=10).containers.run(image, "true", remove=True)
        print("STARTED a container via", url)
    except Exception as exc:
        print("refused via", url, type(exc).__name__)
"""

ESCALATE_THROUGH_THE_PROXY = r"""
import sys
import docker
image = sys.argv[1]
client = docker.DockerClient(base_url="tcp://docker-proxy:2375", timeout=10)
attempts = {
    "privileged": dict(privileged=True),
    "host root bound": dict(volumes={"/": {"bind": "/host", "mode": "rw"}}),
    "host network": dict(network_mode="host"),
}
for name, extra in attempts.items():
    try:
        client.containers.run(image, "true", remove=True, **extra)
        print(name, "ALLOWED")
    except docker.errors.APIError as exc:
        print(name, "refused", exc.response.status_code, exc.explanation)
try:
    client.containers.run("debian:bookworm-slim", "true", remove=True)
    print("foreign image ALLOWED")
except docker.errors.APIError as exc:
    print("foreign image refused", exc.response.status_code)
# issue 13: a repeated HostConfig (the engine would merge both), and a create smuggled behind an
# attach the engine would refuse with an ordinary error (API version above its maximum)
import json, socket
repro = ('{"Image":"%s","HostConfig":{"Privileged":true,"Binds":["/:/host"],"PidMode":"host"},'
         '"HostConfig":{"NetworkMode":"bridge","Memory":67108864,"PidsLimit":64}}' % image).encode()
r = client.api._post(client.api._url("/containers/create"), data=repro, headers={"Content-Type": "application/json"})
print("merged duplicate", "refused" if r.status_code == 403 else "ALLOWED", r.status_code, r.text.strip())
smuggled = json.dumps({"Image": "debian:bookworm-slim", "HostConfig": {"Privileged": True}}).encode()
with socket.create_connection(("docker-proxy", 2375), timeout=30) as s:
    s.sendall(b"POST /v1.99/containers/x/attach?stream=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
              b"Upgrade: tcp\r\n\r\nPOST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled))
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
print("smuggled attach", "refused" if out.count(b"HTTP/1.1 ") == 1 and out.startswith(b"HTTP/1.1 403") else "ALLOWED",
      out.split(b" ")[1].decode() if out else "-")
"""


def test_the_web_facing_api_server_cannot_start_a_container(stack):
    """No Docker socket in the api-server, and the proxy is not on its network."""
    out = stack.compose("exec", "-T", "api-server", "python", "-c", TRY_TO_START_A_CONTAINER,
                        f"downlink/astro:{stack.tag}", check=False).stdout
    assert "no socket" in out and "STARTED" not in out, out
    assert out.count("refused via") == 2, out


def test_the_proxy_refuses_what_would_give_root_on_the_host(stack):
    """From the scheduler (the one client of the proxy): privileged, host binds, host network and
    foreign images are refused."""
    out = stack.compose("exec", "-T", "scheduler", "python", "-c", ESCALATE_THROUGH_THE_PROXY,
                        f"downlink/astro:{stack.tag}", check=False).stdout
    for attempt in ("privileged", "host root bound", "host network", "foreign image", "merged duplicate", "smuggled attach"):
        assert f"{attempt} refused 403" in out, out
    assert "ALLOWED" not in out, out
