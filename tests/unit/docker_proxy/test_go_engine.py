"""docker-proxy in front of a fake engine that reads requests the way Docker's does (fake_engine/
main.go: Go's net/http keeps connections alive and parses pipelined requests; Go's
encoding/json merges repeated keys and folds their case). The attack classes of issue 13, then a
fuzz test: whatever the proxy forwards, what the engine decodes is within the allow-list."""
import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import exchange

NET = "downlink-net"
ENV = {"PROXY_ALLOWED_IMAGES": "downlink/", "PROXY_ALLOWED_NETWORKS": f"{NET},none",
       "PROXY_ALLOWED_VOLUMES": "downlink-data,downlink-raw:ro", "PROXY_ALLOWED_BIND_SOURCES": "/srv/nights",
       "PROXY_REQUEST_TIMEOUT": "5"}
# What DockerOperator sends for a step (captured from docker-py 7.2 with StepOperator's arguments).
STEP = {
    "ExposedPorts": {}, "Tty": False, "OpenStdin": False, "StdinOnce": False, "AttachStdin": False,
    "AttachStdout": True, "AttachStderr": True, "Env": ["A=1"], "Cmd": ["downlink", "calibrate"],
    "Image": "downlink/astro:abc", "NetworkDisabled": False,
    "HostConfig": {"Memory": 536870912, "NetworkMode": NET, "PortBindings": {}, "Ulimits": [],
                   "LogConfig": {"Type": None, "Config": {}}, "CpuShares": 1024, "PidsLimit": 1024,
                   "Mounts": [{"Target": "/data", "Source": "downlink-data", "Type": "volume", "ReadOnly": False},
                              {"Target": "/data/raw", "Source": "downlink-raw", "Type": "volume", "ReadOnly": True}]},
}


@pytest.fixture
def proxy(go_engine, start_proxy):
    return start_proxy(go_engine.path, **ENV)



def post(path, body, extra=b""):
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path.encode(), len(body), extra, body))


def answer(raw):
    """(status, JSON body) of the one response in raw."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body) if body.strip() else None


def refused(raw, rule):
    status, body = answer(raw)
    assert status == 403, raw[:500]
    assert body["message"].startswith("docker-proxy: ") and f"(rule: {rule})" in body["message"], body
    return body["message"]


def creates(engine):
    return [e for e in engine.forwarded() if e["Target"].split("?")[0].endswith("/containers/create")]


# --------------------------------------------------------------------------------------------
# The fake engine is the engine: both findings of issue 13 are real against it directly.

REPRODUCER = (b'{"Image":"downlink/astro:TAG","HostConfig":{"Privileged":true,"Binds":["/:/host"],"PidMode":"host"},'
              b'"HostConfig":{"NetworkMode":"downlink-net"}}')


def test_the_fake_engine_merges_repeated_keys_like_go(go_engine):
    status, _ = go_engine.request("POST", "/v1.41/containers/create", REPRODUCER)
    hc = go_engine.log()[-1]["HostConfig"]
    assert status == 201 and hc["Privileged"] and hc["Binds"] == ["/:/host"] and hc["PidMode"] == "host"
    assert hc["NetworkMode"] == NET
    go_engine.request("POST", "/v1.41/containers/create", b'{"Image":"x","HostConfig":{},"hostconfig":{"privileged":true}}')
    assert go_engine.log()[-1]["HostConfig"]["Privileged"] is True


def test_the_fake_engine_keeps_the_connection_after_an_error(go_engine):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(go_engine.path)
        s.sendall(b"POST /v1.99/containers/x/attach?stream=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                  b"Upgrade: tcp\r\n\r\n" + post("/v1.41/containers/create", REPRODUCER))
        data = b""
        while data.count(b"HTTP/1.1 ") < 2:
            data += s.recv(65536)
    assert b"HTTP/1.1 400" in data and b"HTTP/1.1 201" in data
    assert go_engine.log()[-1]["HostConfig"]["Privileged"] is True


# --------------------------------------------------------------------------------------------
# Finding 1: repeated keys, case variants, at every level


@pytest.mark.parametrize("body", [
    REPRODUCER,
    b'{"Image":"downlink/astro:1","HostConfig":{"Memory":1048576,"PidsLimit":9,"NetworkMode":"downlink-net"},'
    b'"hostconfig":{"Privileged":true}}',
    b'{"Image":"downlink/astro:1","HostConfig":{"Memory":1048576,"PidsLimit":9,"NetworkMode":"downlink-net",'
    b'"privileged":false,"Privileged":true}}',
    b'{"Image":"downlink/astro:1","image":"debian:12","HostConfig":{"Memory":1048576,"PidsLimit":9}}',
    b'{"Image":"downlink/astro:1","HostConfig":{"Memory":1048576,"PidsLimit":9,"NetworkMode":"downlink-net",'
    b'"Mounts":[{"Type":"volume","Source":"downlink-data","Target":"/d","VolumeOptions":{"NoCopy":true},'
    b'"VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/"}}}}]}}',
    b'{"Image":"downlink/astro:1","HostConfig":{"Memory":1048576,"PidsLimit":9,"NetworkMode":"downlink-net",'
    b'"Mounts":[{"Type":"volume","Source":"downlink-raw","ReadOnly":true,"readonly":false,"Target":"/r"}]}}',
    b'{"Image":"downlink/astro:1","Labels":{"a":"1","A":"2"},"HostConfig":{"Memory":1048576,"PidsLimit":9}}',
], ids=["reproducer", "lowercase-hostconfig", "case-variant-field", "image-twice", "volume-options-twice",
        "read-only-twice", "label-case"])
def test_repeated_keys_are_refused_at_every_level(proxy, go_engine, body):
    assert "repeats" in refused(exchange(proxy.port, post("/v1.41/containers/create", body)), "duplicate-key")
    assert creates(go_engine) == []


@pytest.mark.parametrize("key", ["\\u017fecurityOpt", "Privileged\\u212a", "HostConfi\\u0261"])
def test_non_ascii_keys_are_refused(proxy, go_engine, key):
    body = b'{"Image":"downlink/astro:1","HostConfig":{"Memory":1048576,"PidsLimit":9,"%s":["seccomp=unconfined"]}}' % key.encode()
    refused(exchange(proxy.port, post("/v1.41/containers/create", body)), "key")
    assert creates(go_engine) == []


def test_host_fields_at_the_top_level_never_reach_the_engine(proxy, go_engine):
    body = {**STEP, "Privileged": True, "Binds": ["/:/host"]}
    assert "body.Privileged is not allowed" in refused(exchange(proxy.port, post("/v1.41/containers/create", body)), "privileged")
    # empty ones are dropped (docker-py sends such), not forwarded
    ok = {**STEP, "Privileged": False, "Binds": None, "Volumes": {}}
    status, _ = answer(exchange(proxy.port, post("/v1.41/containers/create", ok)))
    assert status == 201
    [created] = creates(go_engine)
    assert created["HostConfig"]["Privileged"] is False and created["HostConfig"]["Binds"] is None


def test_the_engine_gets_the_proxys_serialisation(proxy, go_engine):
    raw = json.dumps(STEP, indent=3).encode().replace(b'"Cmd"', b'"cmd"')
    status, _ = answer(exchange(proxy.port, post("/v1.41/containers/create?name=step-1", raw)))
    assert status == 201
    [created] = creates(go_engine)
    assert created["Config"]["Cmd"] == ["downlink", "calibrate"] and created["HostConfig"]["PidsLimit"] == 1024
    assert created["HostConfig"]["Memory"] == 536870912 and [m["Source"] for m in created["HostConfig"]["Mounts"]] == [
        "downlink-data", "downlink-raw"]


@pytest.mark.parametrize("change,rule", [
    ({"HostConfig": {**STEP["HostConfig"], "PidsLimit": None}}, "limits"),
    ({"HostConfig": {**STEP["HostConfig"], "PidsLimit": -1}}, "limits"),
    ({"HostConfig": {**STEP["HostConfig"], "Memory": 0}}, "limits"),
    ({"HostConfig": None}, "limits"),
    ({"User": "0"}, "root"), ({"User": "root"}, "root"), ({"User": "0:0"}, "root"), ({"User": "root:astro"}, "root"),
    ({"Image": "downlink/rootimage:1"}, "root"),  # no User, and the image runs as root
    ({"Image": "debian:bookworm-slim"}, "image"),
    ({"HostConfig": {**STEP["HostConfig"], "CapAdd": ["SYS_ADMIN"]}}, "cap-add"),
    ({"HostConfig": {**STEP["HostConfig"], "SecurityOpt": ["seccomp=unconfined"]}}, "security-opt"),
    ({"HostConfig": {**STEP["HostConfig"], "NetworkMode": "host"}}, "network"),
    ({"HostConfig": {**STEP["HostConfig"], "LogConfig": {"Type": "syslog"}}}, "log-driver"),
    ({"HostConfig": {**STEP["HostConfig"], "Mounts": [{"Type": "bind", "Source": "/", "Target": "/h", "ReadOnly": True}]}}, "bind"),
    ({"HostConfig": {**STEP["HostConfig"], "Mounts": [{"Type": "volume", "Source": "downlink-raw", "Target": "/r"}]}}, "volume"),
    ({"HostConfig": {**STEP["HostConfig"], "Mounts": [{"Type": "volume", "Target": "/r"}]}}, "volume"),
    ({"Healthcheck": {"Test": ["CMD", "true"]}}, "not-allowed"),
])
def test_the_allow_list(proxy, go_engine, change, rule):
    refused(exchange(proxy.port, post("/v1.41/containers/create", {**STEP, **change})), rule)
    assert creates(go_engine) == []


# --------------------------------------------------------------------------------------------
# Finding 2: nothing after an attach the engine did not switch reaches it


def own_container(proxy):
    status, body = answer(exchange(proxy.port, post("/v1.41/containers/create", STEP)))
    assert status == 201
    return body["Id"]


SMUGGLED = post("/v1.41/containers/create", {"Image": "debian:bookworm-slim", "HostConfig": {"Privileged": True}})


@pytest.mark.parametrize("attach", [
    "/v1.99/containers/{id}/attach?stream=1&stdout=1",
    "/v1.41/containers/{id}/attach?stream=1;x",
    "/v1.41/containers/{id}/attach?stream=1&detachKeys=ctrl-x",
    "/v1.11/containers/{id}/attach?stream=1",
])
def test_an_attach_the_proxy_refuses_is_never_forwarded(proxy, go_engine, attach):
    cid = own_container(proxy)
    raw = (b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
           % attach.format(id=cid).encode()) + SMUGGLED
    r = exchange(proxy.port, raw)
    assert r.count(b"HTTP/1.1 ") == 1
    refused(r, "api-version" if "v1.99" in attach or "v1.11" in attach else "query")
    assert len(creates(go_engine)) == 1 and not any("attach" in e["Target"] for e in go_engine.forwarded())


def test_an_attach_the_engine_answers_with_an_error_is_closed(proxy, go_engine):
    """The proxy's checks pass, the engine answers 404 (the container went away meanwhile) and
    keeps its connection open: the proxy passes the 404 back and closes both sides."""
    cid = own_container(proxy)
    assert go_engine.request("DELETE", f"/containers/{cid}")[0] == 204  # behind the proxy's back
    raw = (b"POST /v1.41/containers/%s/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
           b"Upgrade: tcp\r\n\r\n" % cid.encode()) + SMUGGLED
    r = exchange(proxy.port, raw)
    status, body = answer(r)
    assert status == 404 and r.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in r
    assert len(creates(go_engine)) == 1  # only the first, allowed one


def test_an_attach_the_engine_switches_is_relayed_raw(proxy, go_engine):
    cid = own_container(proxy)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST /v1.41/containers/%s/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly stdin" % cid.encode())
        data = b""
        while b"echo:" not in data:
            data += s.recv(65536)
        assert data.startswith(b"HTTP/1.1 101 UPGRADED") and b"Upgrade: tcp" in data
        s.shutdown(socket.SHUT_WR)
        while not data.endswith(b"bye"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert b"echo:early stdin" in data and data.endswith(b"bye")


def test_an_attach_without_upgrade_gets_the_raw_stream(proxy, go_engine):
    cid = own_container(proxy)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST /v1.41/containers/%s/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: x\r\n\r\nin" % cid.encode())
        data = b""
        while b"echo:in" not in data:
            data += s.recv(65536)
        assert data.startswith(b"HTTP/1.1 200") and b"vnd.docker.raw-stream" in data


def test_pipelined_requests_are_dropped(proxy, go_engine):
    r = exchange(proxy.port, b"GET /v1.41/_ping HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED
                 + b"GET /v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.count(b"HTTP/1.1 ") == 1 and r.startswith(b"HTTP/1.1 200")
    assert [e["Target"] for e in go_engine.forwarded()] == ["/v1.41/_ping"]


def test_a_keep_alive_client_works(proxy, go_engine):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for _ in range(3):
        conn.request("GET", "/v1.41/version")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["ApiVersion"] == "1.41"
    conn.close()


def test_info_is_refused(proxy, go_engine):
    refused(exchange(proxy.port, b"GET /v1.41/info HTTP/1.1\r\nHost: x\r\n\r\n"), "endpoint")


@pytest.mark.parametrize("target,rule", [
    ("/v1.41/containers/{id}/logs?stdout=1&stdout=0", "query"),
    ("/v1.41/containers/{id}/logs?stdout=1&foo=1", "query"),
    ("/v1.41/containers/{id}/logs?tail=1%3Bx", "query"),
    ("/v1.41/containers/{id}/json?size=yes", "query"),
    ("/v1.41/containers/{id}/json?size", "query"),
    ("/v1.42/containers/{id}/json", "api-version"),
    ("/v1.41.0.1/containers/{id}/json", "malformed"),
])
def test_queries_and_versions(proxy, go_engine, target, rule):
    cid = own_container(proxy)
    r = exchange(proxy.port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.format(id=cid).encode())
    if rule == "malformed":
        assert answer(r)[0] == 400
    else:
        refused(r, rule)
    assert len(go_engine.forwarded()) == 1


# --------------------------------------------------------------------------------------------
# Fuzz: bodies with repeated keys, case variants, nesting and host fields anywhere; whatever the
# proxy forwards must decode (Go's way) into something within the allow-list.


DANGEROUS = [
    ("Privileged", True), ("Binds", ["/:/host"]), ("PidMode", "host"), ("IpcMode", "host"),
    ("UTSMode", "host"), ("UsernsMode", "host"), ("NetworkMode", "host"), ("CapAdd", ["ALL"]),
    ("Capabilities", ["CAP_SYS_ADMIN"]), ("Devices", [{"PathOnHost": "/dev/sda"}]),
    ("SecurityOpt", ["seccomp=unconfined"]), ("MaskedPaths", []), ("CgroupParent", "/"),
    ("VolumesFrom", ["other"]), ("Runtime", "nvidia"), ("Sysctls", {"kernel.x": "1"}),
    ("Mounts", [{"Type": "bind", "Source": "/", "Target": "/host"}]),
    ("Mounts", [{"Type": "volume", "Source": "downlink-data", "Target": "/d",
                 "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"device": "/", "o": "bind"}}}}]),
    ("Mounts", [{"Type": "volume", "Source": "downlink-raw", "Target": "/r", "ReadOnly": False}]),
    ("PortBindings", {"22/tcp": [{"HostPort": "22"}]}), ("OomKillDisable", True),
    ("Memory", 0), ("PidsLimit", -1), ("LogConfig", {"Type": "syslog"}), ("User", "0"), ("User", "root:root"),
]
# Allowed fields the step body does not have: bodies with these (in any case) are forwarded.
SAFE = [
    ("Init", True), ("ShmSize", 67108864), ("CapDrop", ["ALL"]), ("SecurityOpt", ["no-new-privileges"]),
    ("Tmpfs", {"/tmp": "size=64m"}), ("ReadonlyRootfs", True), ("NanoCpus", 1000000000),
    ("Mounts", [{"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1048576}}]),
]
SAFE_TOP = [("Labels", {"org.downlink.x": "1"}), ("WorkingDir", "/data"), ("User", "1000:1000"), ("Tty", True)]


def spellings(name):
    """Ways Go would match `name`: as is, lower, upper, and with 's'/'k' as 'ſ'/'K'."""
    return st.sampled_from([name, name.lower(), name.upper(), name.swapcase(),
                            name.replace("s", "\u017f").replace("k", "\u212a")])


@st.composite
def bodies(draw):
    """A JSON text of the step body with dangerous fields and repeats mixed in (as pairs, so that
    keys can repeat), at the top level, in HostConfig, in repeated HostConfigs or in a mount."""
    host = list(STEP["HostConfig"].items())
    top = [(k, v) for k, v in STEP.items() if k != "HostConfig"]
    extra_hosts = []
    for _ in range(draw(st.integers(0, 3))):
        name, value = draw(st.sampled_from(DANGEROUS + SAFE * 2 + SAFE_TOP * 2))
        where = draw(st.sampled_from(["top" if (name, value) in SAFE_TOP else "host"] * 4 + ["top", "second-host", "mount"]))
        key = draw(spellings(name))
        if where == "host":
            host.insert(draw(st.integers(0, len(host))), (key, value))
        elif where == "top":
            top.insert(draw(st.integers(0, len(top))), (key, value))
        elif where == "second-host":
            extra_hosts.append([(key, value)])
        else:
            mount = [("Type", "volume"), ("Source", "downlink-data"), ("Target", "/m"),
                     (draw(spellings("VolumeOptions")), {"DriverConfig": {"Name": "local", "Options": {"device": "/"}}})]
            host.append((draw(spellings("Mounts")), [mount]))
    parts = top + [(draw(spellings("HostConfig")), host)]
    parts += [(draw(spellings("HostConfig")), h) for h in extra_hosts]
    image = (draw(spellings("Image")), draw(st.sampled_from(["debian:12", "downlink/astro:1", "downlink/rootimage:1"])))
    how = draw(st.sampled_from(["keep", "replace", "repeat"]))
    if how == "replace":
        parts = [image if k == "Image" else (k, v) for k, v in parts]
    elif how == "repeat":
        parts.insert(draw(st.integers(0, len(parts))), image)
    return encode(parts).encode()


def encode(value):
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ",".join(json.dumps(k) + ":" + encode(v) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + encode(v) for k, v in value.items()) + "}"
    return json.dumps(value)


def within_allow_list(created):
    hc, config = created["HostConfig"], created["Config"]
    assert config["Image"].startswith("downlink/") and not config["Image"].startswith("downlink/root")
    assert config["User"] in ("", "1000:1000")
    assert hc["Privileged"] is False and not hc["Binds"] and not hc["VolumesFrom"] and not hc["Devices"]
    assert hc["PidMode"] == hc["UTSMode"] == hc["UsernsMode"] == hc["CgroupParent"] == hc["Runtime"] == ""
    assert hc["IpcMode"] in ("", "private", "none") and hc["NetworkMode"] in (NET, "none")
    assert not hc["CapAdd"] and not hc["Capabilities"] and not hc["Sysctls"] and not hc["PortBindings"]
    assert hc["MaskedPaths"] is None and hc["ReadonlyPaths"] is None and not hc["OomKillDisable"]
    assert not hc["SecurityOpt"] or set(hc["SecurityOpt"]) <= {"no-new-privileges", "no-new-privileges:true"}
    assert hc["Memory"] > 0 and hc["PidsLimit"] and hc["PidsLimit"] > 0
    assert hc["LogConfig"]["Type"] in ("", "json-file", "local")
    for m in hc["Mounts"] or []:
        if m["Type"] == "tmpfs" and not m["Source"]:
            continue
        assert m["Type"] == "volume" and m["Source"] in ("downlink-data", "downlink-raw")
        assert m["Source"] != "downlink-raw" or m["ReadOnly"]
        assert not (m["VolumeOptions"] or {}).get("DriverConfig")


def test_fuzz_whatever_is_forwarded_is_within_the_allow_list(go_engine, start_proxy):
    proxy = start_proxy(go_engine.path, **ENV)
    seen = {"forwarded": 0, "refused": 0}

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(bodies())
    def check(body):
        before = len(creates(go_engine))
        status, answer_body = answer(exchange(proxy.port, post("/v1.41/containers/create", body)))
        after = creates(go_engine)
        if status == 201:
            seen["forwarded"] += 1
            assert len(after) == before + 1
            within_allow_list(after[-1])
        else:
            seen["refused"] += 1
            assert status in (400, 403), answer_body
            assert len(after) == before
    check()
    print(f"\nfuzz: {seen}")
    assert seen["forwarded"] and seen["refused"]
