"""docker-proxy against the real Docker engine: DockerOperator's sequence works through it, and
what must not pass does not. Skipped when there is no engine socket, no docker SDK, or no
downlink/* image.

The proxy runs as a process (host python3), or as the built image when DOCKER_PROXY_IMAGE is set
(e.g. downlink/docker-proxy:TAG), with the engine's socket mounted. The overhead measurement
runs with DOCKER_PROXY_BENCH=1 (add -s to see the table).

    python -m pytest tests/unit/docker_proxy/test_engine.py
"""
import http.client
import json
import os
import secrets
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ProxyProcess, exchange, free_port, wait_listening

SOCKET = os.environ.get("DOCKER_PROXY_TEST_SOCKET", "/var/run/docker.sock")
if not os.path.exists(SOCKET):
    pytest.skip(f"no Docker engine socket at {SOCKET}", allow_module_level=True)
docker = pytest.importorskip("docker", reason="the docker SDK is needed (pip install docker==7.2.0)")
from docker.types import LogConfig, Mount  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
RUN = secrets.token_hex(4)
LABELS = {"org.downlink.test": f"docker-proxy-{RUN}"}
VOLUME = f"dp-test-{RUN}-data"
RO_VOLUME = f"dp-test-{RUN}-ro"


def direct_client():
    return docker.APIClient(base_url=f"unix://{SOCKET}", version="auto", timeout=120)


def familiar(ref):
    """An image reference as Docker's API spells it (Podman's adds docker.io/ or localhost/)."""
    for prefix in ("docker.io/", "localhost/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def is_podman(direct):
    """The engine is Podman's Docker-compatible API (DOCKER_PROXY_TEST_SOCKET=Podman's socket)."""
    return any(c.get("Name") == "Podman Engine" for c in direct.version().get("Components") or [])


def pick_image(direct):
    """downlink/astro:<this tree's tag>, else the newest local downlink/astro, else any downlink/*."""
    try:
        tag = subprocess.run([str(ROOT / "tools" / "image-tag.sh")], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    except OSError:
        tag = ""
    images = sorted(direct.images(), key=lambda i: i.get("Created", 0), reverse=True)
    # Podman's API names images in full (docker.io/downlink/x, localhost/downlink/x); Docker's in short.
    tags = [familiar(t) for i in images for t in (i.get("RepoTags") or []) if familiar(t).startswith("downlink/")]
    for want in ([f"downlink/astro:{tag}"] if tag else []) + [t for t in tags if t.startswith("downlink/astro:")] + tags:
        if want in tags and not want.startswith("downlink/docker-proxy:"):
            return want
    pytest.skip("no downlink/* image on this engine (make build)")


@pytest.fixture(scope="module")
def direct():
    client = direct_client()
    try:
        client.ping()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"the Docker engine does not answer: {e}")
    yield client
    for c in client.containers(all=True, filters={"label": f"org.downlink.test=docker-proxy-{RUN}"}):
        client.remove_container(c["Id"], force=True)
    for v in (VOLUME, RO_VOLUME):
        try:
            client.remove_volume(v, force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture(scope="module")
def image(direct):
    return pick_image(direct)


PROXY_ENV = {
    "PROXY_ALLOWED_IMAGES": "downlink/",
    "PROXY_ALLOWED_NETWORKS": "bridge,none",
    "PROXY_ALLOWED_VOLUMES": f"{VOLUME},{RO_VOLUME}:ro",
}


class ProxyContainer:
    """The built image, the engine's socket mounted, published on a loopback port."""

    def __init__(self, direct, proxy_image):
        self.direct = direct
        self.port = free_port()
        gid = os.stat(SOCKET).st_gid
        self.container = direct.create_container(
            proxy_image, environment=PROXY_ENV, labels=LABELS, ports=[2375],
            host_config=direct.create_host_config(
                mounts=[Mount("/var/run/docker.sock", SOCKET, type="bind")],
                port_bindings={2375: ("127.0.0.1", self.port)}, group_add=[str(gid)],
                cap_drop=["ALL"], security_opt=["no-new-privileges"], read_only=True))
        direct.start(self.container)
        wait_listening(self.port)
        deadline = time.monotonic() + 30
        while direct.inspect_container(self.container)["State"].get("Health", {}).get("Status") != "healthy":
            if time.monotonic() > deadline:
                raise RuntimeError("the proxy container did not become healthy:\n" + self.log_text())
            time.sleep(0.5)

    @property
    def url(self):
        return f"tcp://127.0.0.1:{self.port}"

    def log_text(self):
        return self.direct.logs(self.container).decode()

    def stop(self):
        self.direct.remove_container(self.container, force=True)


@pytest.fixture(scope="module")
def proxy(direct, tmp_path_factory):
    proxy_image = os.environ.get("DOCKER_PROXY_IMAGE")
    if proxy_image:
        p = ProxyContainer(direct, proxy_image)
    else:
        p = ProxyProcess(SOCKET, PROXY_ENV, log_path=tmp_path_factory.mktemp("proxy") / "proxy.log")
    yield p
    print("\n---- docker-proxy log ----\n" + p.log_text())
    p.stop()


@pytest.fixture(scope="module")
def client(proxy):
    """What DockerOperator uses: a low-level APIClient, API version negotiated (version=None)."""
    return docker.APIClient(base_url=proxy.url, version=None, timeout=120)


def log_lines_since(proxy, mark):
    return proxy.log_text().splitlines()[mark:]


def forbidden(excinfo, rule):
    err = excinfo.value
    assert err.status_code == 403, err
    assert f"(rule: {rule})" in str(err.explanation), err.explanation
    return str(err.explanation)


def step_host_config(client, **kw):
    return client.create_host_config(**{
        "auto_remove": False, "mounts": [Mount("/data", VOLUME, type="volume")], "network_mode": "bridge",
        "mem_limit": "64m", "pids_limit": 64, "cpu_shares": 1024, "log_config": LogConfig(config={}), **kw})


def test_docker_operator_sequence(client, direct, proxy, image):
    mark = len(proxy.log_text().splitlines())
    assert client.images(name=image)  # DockerOperator: is the image here (else it would pull)?
    c = client.create_container(
        image, command=["sh", "-c", "echo hi; echo err >&2; echo data > /data/f; exit 3"],
        environment={"DOWNLINK_STEP": "probe"}, labels=LABELS, host_config=step_host_config(client))
    cid = c["Id"]
    stream = client.attach(cid, stdout=True, stderr=True, stream=True)
    client.start(cid)
    output = b"".join(stream)
    assert b"hi\n" in output and b"err\n" in output
    assert client.wait(cid)["StatusCode"] == 3
    assert sorted(client.logs(cid, stdout=True, stderr=True).splitlines()) == [b"err", b"hi"]
    assert client.logs(cid, stdout=False, stderr=True) == b"err\n"
    info = client.inspect_container(cid)
    assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024 and info["State"]["OOMKilled"] is False
    assert [m["Name"] for m in info["Mounts"]] == [VOLUME]
    client.remove_container(cid)
    with pytest.raises(docker.errors.NotFound):
        direct.inspect_container(cid)
    # removed: the proxy forgets it
    with pytest.raises(docker.errors.APIError) as e:
        client.inspect_container(cid)
    forbidden(e, "ownership")
    calls = [line.split(" docker-proxy ")[1] for line in log_lines_since(proxy, mark)]
    print("\nthe calls of the DockerOperator sequence:\n  " + "\n  ".join(calls))
    assert all(line.startswith("ALLOW") for line in calls[:-1]) and "rule=ownership" in calls[-1]


def test_a_read_only_volume_and_kill_stop(client, direct, image):
    c = client.create_container(image, command=["sleep", "60"], labels=LABELS, host_config=step_host_config(
        client, mounts=[Mount("/data", VOLUME, type="volume"), Mount("/ro", RO_VOLUME, type="volume", read_only=True)]))
    client.start(c)
    client.stop(c, timeout=1)
    assert client.wait(c)["StatusCode"] != 0
    client.start(c)
    client.kill(c)
    client.remove_container(c, force=True)


def test_diagnostics_image_lookup(proxy, image):
    images = docker.DockerClient(base_url=proxy.url).images
    assert images.get(image).tags
    with pytest.raises(docker.errors.ImageNotFound):
        images.get("downlink/no-such-image:1")


def test_privileged_is_refused(client, image):
    with pytest.raises(docker.errors.APIError) as e:
        client.create_container(image, "true", labels=LABELS, host_config=step_host_config(client, privileged=True))
    forbidden(e, "privileged")


def test_a_bind_mount_of_the_root_is_refused(client, image):
    with pytest.raises(docker.errors.APIError) as e:
        client.create_container(image, "true", labels=LABELS, host_config=step_host_config(
            client, mounts=[Mount("/host", "/", type="bind", read_only=True)]))
    assert "bind mount of /" in forbidden(e, "bind")
    with pytest.raises(docker.errors.APIError) as e:
        client.create_container(image, "true", labels=LABELS, host_config=step_host_config(
            client, binds=["/:/host:ro"], mounts=[]))
    forbidden(e, "binds")


def test_another_image_is_refused(client, direct):
    with pytest.raises(docker.errors.APIError) as e:
        client.create_container("debian:bookworm-slim", "true", labels=LABELS, host_config=step_host_config(client))
    forbidden(e, "image")


def test_other_volumes_networks_and_pulls_are_refused(client, image):
    for kw, rule in [({"mounts": [Mount("/d", "some-other-volume", type="volume")]}, "volume"),
                     ({"mounts": [Mount("/d", RO_VOLUME, type="volume")]}, "volume"),
                     ({"network_mode": "host"}, "network")]:
        with pytest.raises(docker.errors.APIError) as e:
            client.create_container(image, "true", labels=LABELS, host_config=step_host_config(client, **kw))
        forbidden(e, rule)
    with pytest.raises(docker.errors.APIError) as e:
        client.pull("alpine", tag="latest")
    forbidden(e, "endpoint")
    with pytest.raises(docker.errors.APIError) as e:
        client.create_volume("dp-test-should-not-exist")
    forbidden(e, "endpoint")
    with pytest.raises(docker.errors.APIError) as e:
        client.containers()
    forbidden(e, "endpoint")


def test_exec_is_refused_even_on_own_containers(client, image):
    c = client.create_container(image, command=["sleep", "60"], labels=LABELS, host_config=step_host_config(client))
    client.start(c)
    try:
        with pytest.raises(docker.errors.APIError) as e:
            client.exec_create(c, ["id"])
        forbidden(e, "endpoint")
    finally:
        client.remove_container(c, force=True)


def test_containers_the_proxy_did_not_create_are_out_of_reach(client, direct, image):
    foreign = direct.create_container(image, command=["sleep", "60"], labels=LABELS)["Id"]
    try:
        for call in (lambda: client.remove_container(foreign, force=True), lambda: client.start(foreign),
                     lambda: client.attach(foreign, stream=True), lambda: client.logs(foreign),
                     lambda: client.inspect_container(foreign), lambda: client.kill(foreign),
                     lambda: client.stop(foreign), lambda: client.wait(foreign)):
            with pytest.raises(docker.errors.APIError) as e:
                call()
            forbidden(e, "ownership")
        assert direct.inspect_container(foreign)["State"]["Status"] == "created"
    finally:
        direct.remove_container(foreign, force=True)


def raw_request(proxy, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data else None


def test_host_settings_at_the_top_level_of_the_body(proxy, direct, image):
    """Engine 20.10 takes HostConfig fields from the top level of a create body that has no
    HostConfig: proven here on the engine itself, and refused by the proxy."""
    body = {"Image": image, "Cmd": ["true"], "Labels": LABELS, "Privileged": True}
    if not is_podman(direct):  # Podman's API ignores a top-level Privileged; Docker's applies it
        created = direct._post_json(direct._url("/containers/create"), data=body)
        cid = direct._result(created, json=True)["Id"]
        try:
            assert direct.inspect_container(cid)["HostConfig"]["Privileged"] is True
        finally:
            direct.remove_container(cid, force=True)
    status, answer = raw_request(proxy, "POST", "/v1.41/containers/create", body)
    assert status == 403 and "(rule: privileged)" in answer["message"]
    status, answer = raw_request(proxy, "POST", "/v1.41/containers/create",
                                 {"Image": image, "Cmd": ["true"], "hostconfig": {"privileged": True}})
    assert status == 403 and "(rule: privileged)" in answer["message"]


def test_legacy_start_with_a_host_config_is_refused(client, proxy, image):
    c = client.create_container(image, "true", labels=LABELS, host_config=step_host_config(client))
    try:
        status, answer = raw_request(proxy, "POST", f"/v1.23/containers/{c['Id']}/start", {"Privileged": True})
        assert status == 403 and "(rule: api-version)" in answer["message"]
        status, answer = raw_request(proxy, "POST", f"/v1.41/containers/{c['Id']}/start", {"Privileged": True})
        assert status == 403 and "(rule: body)" in answer["message"]
    finally:
        client.remove_container(c, force=True)


# --------------------------------------------------------------------------------------------
# Issue 13's attack classes against the real engine: each refused with 403 and a reason, and
# nothing they asked for is ever created.

SMUGGLE = {"org.downlink.test": f"docker-proxy-{RUN}", "org.downlink.smuggled": RUN}


def raw_exchange(proxy, data, timeout=30):
    """Raw bytes to the proxy on one connection; everything it answers until it closes."""
    return exchange(proxy.port, data, timeout=timeout)


def raw_post(path, body):
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (b"POST %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), len(body), body))


def the_refusal(raw, rule):
    head, _, body = raw.partition(b"\r\n\r\n")
    assert raw.count(b"HTTP/1.1 ") == 1, raw[:1000]  # one answer: nothing after it was served
    assert head.startswith(b"HTTP/1.1 403"), raw[:1000]
    message = json.loads(body)["message"]
    assert f"(rule: {rule})" in message, message
    return message


def privileged_root_bind(image):
    return {"Image": image, "Cmd": ["true"], "Labels": SMUGGLE,
            "HostConfig": {"Privileged": True, "Binds": ["/:/host"], "PidMode": "host"}}


def test_attack_battery(proxy, direct, client, image):
    base = {"Image": image, "Cmd": ["true"], "Labels": SMUGGLE}
    hc = {"Memory": 64 << 20, "PidsLimit": 64, "NetworkMode": "bridge"}
    smuggled = raw_post("/v1.41/containers/create", {**privileged_root_bind("debian:bookworm-slim")})
    bodies = {
        # finding 1: the reproducer, a lower-case second key, case variants, a repeated mount option
        "reproducer": ('{"Image":"%s","Labels":%s,"HostConfig":{"Privileged":true,"Binds":["/:/host"],"PidMode":"host"},'
                       '"HostConfig":{"NetworkMode":"bridge","Memory":67108864,"PidsLimit":64}}' % (image, json.dumps(SMUGGLE))),
        "lowercase": ('{"Image":"%s","Labels":%s,"HostConfig":{"NetworkMode":"bridge","Memory":67108864,"PidsLimit":64},'
                      '"hostconfig":{"Privileged":true,"Binds":["/:/host"]}}' % (image, json.dumps(SMUGGLE))),
        "case-variant": ('{"Image":"%s","Labels":%s,"HostConfig":{"NetworkMode":"bridge","Memory":67108864,"PidsLimit":64,'
                         '"privileged":false,"PRIVILEGED":true}}' % (image, json.dumps(SMUGGLE))),
        "volume-options": ('{"Image":"%s","Labels":%s,"HostConfig":{"NetworkMode":"bridge","Memory":67108864,"PidsLimit":64,'
                           '"Mounts":[{"Type":"volume","Source":"%s","Target":"/d","VolumeOptions":{"NoCopy":true},'
                           '"VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/"}}}}]}}'
                           % (image, json.dumps(SMUGGLE), VOLUME)),
        "long-s": ('{"Image":"%s","Labels":%s,"HostConfig":{"NetworkMode":"bridge","Memory":67108864,"PidsLimit":64,'
                   '"\u017fecurityOpt":["seccomp=unconfined"]}}' % (image, json.dumps(SMUGGLE))),
    }
    for name, body in bodies.items():
        rule = "key" if name == "long-s" else "duplicate-key"
        assert "docker-proxy" in the_refusal(raw_exchange(proxy, raw_post("/v1.41/containers/create", body.encode())), rule), name
    # host fields at the top level, beside a HostConfig; and no limits
    the_refusal(raw_exchange(proxy, raw_post("/v1.41/containers/create", {**base, "HostConfig": hc, "Privileged": True})),
                "privileged")
    the_refusal(raw_exchange(proxy, raw_post("/v1.41/containers/create", {**base, "HostConfig": {"NetworkMode": "bridge"}})),
                "limits")
    the_refusal(raw_exchange(proxy, raw_post("/v1.41/containers/create", {**base, "User": "0", "HostConfig": hc})), "root")
    # finding 2: an attach the engine would refuse with an ordinary error, then a create on the
    # same connection; and plain pipelining
    own = client.create_container(image, command=["sleep", "30"], labels=LABELS, host_config=step_host_config(client))["Id"]
    try:
        for attach, rule in [(f"/v1.99/containers/{own}/attach?stream=1&stdout=1", "api-version"),
                             (f"/v1.41/containers/{own}/attach?stream=1;x", "query"),
                             (f"/v1.41/containers/{own}/attach?stream=1&detachKeys=ctrl-a", "query")]:
            raw = (b"POST %s HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n" % attach.encode()
                   + smuggled)
            the_refusal(raw_exchange(proxy, raw), rule)
        answer = raw_exchange(proxy, b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n" + smuggled)
        assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 200")
        # the engine itself refuses this attach (its container is gone): the proxy passes the
        # error back and closes, so the create behind it is never read
        direct.remove_container(own, force=True)
        raw = (b"POST /v1.41/containers/%s/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: docker\r\n"
               b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" % own.encode()) + smuggled
        answer = raw_exchange(proxy, raw)
        assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 404"), answer[:500]
    finally:
        try:
            direct.remove_container(own, force=True)
        except docker.errors.NotFound:
            pass
    # /info is refused
    the_refusal(raw_exchange(proxy, b"GET /v1.41/info HTTP/1.1\r\nHost: docker\r\n\r\n"), "endpoint")
    # nothing of it was ever created, and no container of this run is privileged
    assert direct.containers(all=True, filters={"label": f"org.downlink.smuggled={RUN}"}) == []
    for c in direct.containers(all=True, filters={"label": f"org.downlink.test=docker-proxy-{RUN}"}):
        info = direct.inspect_container(c["Id"])
        if familiar(info["Config"]["Image"]).startswith("downlink/docker-proxy"):
            continue
        assert not info["HostConfig"]["Privileged"] and not info["HostConfig"]["Binds"], info["Name"]
        assert info["HostConfig"]["PidMode"] == "" and info["HostConfig"]["PidsLimit"], info["Name"]


def host_mounts(hc):
    """(type, target) of a container's HostConfig mounts. Podman's inspect has no HostConfig.Mounts
    and shows a tmpfs mount in HostConfig.Tmpfs, as Docker does for --tmpfs."""
    return ([(m["Type"], m["Target"]) for m in hc.get("Mounts") or []]
            + [("tmpfs", target) for target in hc.get("Tmpfs") or {}])


def drops_every_default_cap(direct, dropped):
    """Podman's inspect lists a CapDrop of ALL as the engine's default capabilities, one by one."""
    if not is_podman(direct):
        return False
    info = direct._result(direct._get(direct.base_url + "/v4.0.0/libpod/info"), json=True)
    defaults = {c.removeprefix("CAP_") for c in info["host"]["security"]["capabilities"].split(",")}
    return bool(defaults) and defaults <= {c.upper().removeprefix("CAP_") for c in dropped}


def test_what_the_engine_runs_is_what_was_checked(client, direct, image):
    """A create in the docker-py shape with case variants: the engine gets the proxy's own
    serialisation and runs exactly the checked settings, limits included."""
    body = {"image": image, "cmd": ["true"], "labels": LABELS,
            "hostconfig": {"memory": 64 << 20, "pidslimit": 32, "networkmode": "bridge", "capdrop": ["ALL"],
                           "securityopt": ["no-new-privileges"], "init": True, "shmsize": 1 << 20,
                           "mounts": [{"type": "tmpfs", "target": "/scratch"}]}}
    created = client._post_json(client._url("/containers/create"), data=body)
    cid = client._result(created, json=True)["Id"]
    try:
        hc = direct.inspect_container(cid)["HostConfig"]
        assert hc["Memory"] == 64 << 20 and hc["PidsLimit"] == 32 and not hc.get("CapAdd")
        assert hc["CapDrop"] == ["ALL"] or drops_every_default_cap(direct, hc["CapDrop"]), hc["CapDrop"]
        assert hc["SecurityOpt"] == ["no-new-privileges"] and hc["Init"] is True and hc["ShmSize"] == 1 << 20
        assert host_mounts(hc) == [("tmpfs", "/scratch")] and not hc["Privileged"] and not hc.get("Binds")
    finally:
        direct.remove_container(cid, force=True)


def airflow_image(direct):
    # This tree's image (the Makefile passes it): on a shared engine the newest airflow image may
    # be another checkout's, without this tree's packages installed.
    if os.environ.get("AIRFLOW_IMAGE"):
        return os.environ["AIRFLOW_IMAGE"]
    tags = [t for i in sorted(direct.images(), key=lambda i: i.get("Created", 0), reverse=True)
            for t in map(familiar, i.get("RepoTags") or []) if t.startswith("downlink/airflow:")]
    if not tags:
        pytest.skip("no downlink/airflow image")
    return tags[0]


STEP_SCRIPT = """
import sys
from downlink_airflow.config import Settings
from downlink_airflow.steps import StepOperator, astro_step

class TI:
    dag_id, task_id, run_id, map_index = "proxy_test", "probe", "manual__{run}", -1

s = Settings.from_env({{"DOWNLINK_ASTRO_IMAGE": "{image}", "DOCKER_HOST": "{url}",
                       "DOWNLINK_DATA_VOLUME": "{volume}", "DOWNLINK_NETWORK": "bridge"}})
if sys.argv[1] == "name":
    print("NAME", StepOperator.container_name_for(TI()))
    sys.exit(0)
got = []
op = astro_step("probe", ["sh", "-c", "echo hello from the step; echo warning >&2"], settings=s,
                mem_limit="128m", labels={labels!r}, stderr_callback=lambda ctx: got.append(ctx["downlink_stderr"]))
print("RESULT", op.execute({{"ti": TI()}}), got)
"""


def run_step(direct, airflow, proxy_url, image, mode="run"):
    """Downlink's StepOperator (a DockerOperator) in the Airflow image, pointed at proxy_url:
    (exit code, output)."""
    script = STEP_SCRIPT.format(run=RUN, image=image, url=proxy_url, volume=VOLUME, labels=LABELS)
    c = direct.create_container(
        airflow, command=["python", "-c", script, mode],
        labels=LABELS, host_config=direct.create_host_config(
            network_mode="host", mounts=[Mount("/opt/airflow/plugins", str(ROOT / "plugins"), type="bind", read_only=True)]))
    try:
        direct.start(c)
        code = direct.wait(c, timeout=300)["StatusCode"]
        return code, direct.logs(c).decode()
    finally:
        direct.remove_container(c, force=True)


def test_the_real_docker_operator_through_the_proxy(direct, proxy, image):
    airflow = airflow_image(direct)
    mark = len(proxy.log_text().splitlines())
    code, text = run_step(direct, airflow, proxy.url, image)
    assert code == 0, text[-3000:]
    assert "hello from the step" in text and "RESULT" in text and "[['warning']]" in text, text[-3000:]
    calls = [line.split(" docker-proxy ")[1] for line in log_lines_since(proxy, mark)]
    print("\nStepOperator's calls:\n  " + "\n  ".join(calls))
    assert calls and all(line.startswith(("ALLOW", "MISS  404")) for line in calls), calls


def test_a_step_adopts_its_container_after_a_proxy_restart(direct, image, tmp_path):
    """The scheduler (and the proxy with it) restarted while a step ran: the retry finds the
    earlier try's container by name through a new proxy process, waits for it and removes it."""
    airflow = airflow_image(direct)
    state = tmp_path / "owned"
    env = {**PROXY_ENV, "PROXY_STATE_FILE": str(state)}
    first = ProxyProcess(SOCKET, env, log_path=tmp_path / "first.log")
    try:
        code, text = run_step(direct, airflow, first.url, image, mode="name")
        name = text.split("NAME ", 1)[1].split()[0]
        api = docker.APIClient(base_url=first.url, version=None)
        # runs until the retry waits for it (a signal, not a time: the machine may be slow)
        c = api.create_container(image, command=["sh", "-c", "trap 'echo output of the earlier try; exit 0' USR1; "
                                                 "while :; do sleep 0.1; done"], name=name,
                                 labels=LABELS, host_config=step_host_config(api))
        api.start(c)
    finally:
        first.stop()
    second = ProxyProcess(SOCKET, env, log_path=tmp_path / "second.log")

    def end_it_once_waited_for():
        deadline = time.monotonic() + 300
        while f"/containers/{c['Id']}/wait" not in second.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        direct.kill(c["Id"], signal="SIGUSR1")
    import threading
    ender = threading.Thread(target=end_it_once_waited_for, daemon=True)
    ender.start()
    try:
        code, text = run_step(direct, airflow, second.url, image)
        ender.join(timeout=60)
        assert code == 0, text[-3000:]
        assert "still running" in text and "output of the earlier try" in text, text[-3000:]
        assert "hello from the step" not in text  # not run a second time
        log = second.log_text()
        print("\nadoption through a restarted proxy:\n" + log)
        assert "POST /v1.41/containers/create" not in log and f"({name} = {c['Id'][:12]})" in log
    finally:
        second.stop()
    with pytest.raises(docker.errors.NotFound):
        direct.inspect_container(c["Id"])


@pytest.mark.skipif(os.environ.get("DOCKER_PROXY_BENCH") != "1", reason="set DOCKER_PROXY_BENCH=1 to measure")
def test_overhead(client, direct, image):
    """10 create/start/wait/remove cycles of a trivial container, directly and through the
    proxy: the median of each and their ratio."""
    def cycle(api):
        start = time.perf_counter()
        c = api.create_container(image, command=["true"], labels=LABELS,
                                 host_config=api.create_host_config(network_mode="none", mem_limit="64m", pids_limit=64))
        api.start(c)
        api.wait(c)
        api.remove_container(c)
        return time.perf_counter() - start

    cycle(direct), cycle(client)  # warm-up
    times = {"direct": [], "proxy": []}
    for _ in range(10):  # interleaved, so that drift in the engine hits both alike
        times["direct"].append(cycle(direct))
        times["proxy"].append(cycle(client))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["proxy"] / med["direct"]
    print(f"\noverhead: direct median {med['direct'] * 1000:.0f} ms, proxy median {med['proxy'] * 1000:.0f} ms, "
          f"ratio {ratio:.3f} (min {min(times['direct']) * 1000:.0f}/{min(times['proxy']) * 1000:.0f} ms)")
    assert ratio < 2
