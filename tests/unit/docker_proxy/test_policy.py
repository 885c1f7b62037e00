"""docker-proxy's policy as pure functions: method + path + body -> allowed or denied, and why."""
import copy
import json

import pytest

import docker_proxy_policy as p

CID = "05f887e032a476d004e24baa1d74754e082f8242105be6510762751238dbdd97"
OTHER = "7d89d9e10546bad369e6e1a19e0eb82f323cdd05d70cfbd5527788e5a382c78b"

# What docker-py 7.2 sends for a Downlink step (DockerOperator's create_host_config arguments):
# captured with docker.APIClient.create_container_config.
STEP_BODY = {
    "Hostname": None, "Domainname": None, "ExposedPorts": {}, "User": None, "Tty": False,
    "OpenStdin": False, "StdinOnce": False, "AttachStdin": False, "AttachStdout": True,
    "AttachStderr": True, "Env": ["A=1"], "Cmd": ["downlink", "calibrate", "--night", "2026-11-24"],
    "Image": "downlink/astro:abc", "Volumes": None, "NetworkDisabled": False, "Entrypoint": None,
    "WorkingDir": None,
    "HostConfig": {
        "Memory": 2147483648, "NetworkMode": "downlink-net", "PortBindings": {}, "PidsLimit": 1024,
        "LogConfig": {"Type": None, "Config": {}}, "CpuShares": 1024,
        "Mounts": [
            {"Target": "/data", "Source": "downlink-data", "Type": "volume", "ReadOnly": False},
            {"Target": "/pgdata", "Source": "downlink_pgdata", "Type": "volume", "ReadOnly": True},
        ],
    },
    "NetworkingConfig": None, "MacAddress": None, "Labels": None, "StopSignal": None,
    "Healthcheck": None, "StopTimeout": None, "Runtime": None,
}

DEFAULT = p.Config()
STACK = p.Config.from_env({
    "PROXY_ALLOWED_IMAGES": "downlink/",
    "PROXY_ALLOWED_NETWORKS": "downlink-net",
    "PROXY_ALLOWED_VOLUMES": "downlink-data,downlink_pgdata:ro",
    "PROXY_ALLOWED_BIND_SOURCES": "/srv/nights",
})


def body(**changes):
    """STEP_BODY with HostConfig fields (hc_X=...) or top-level fields changed."""
    b = copy.deepcopy(STEP_BODY)
    for k, v in changes.items():
        if k.startswith("hc_"):
            b["HostConfig"][k[3:]] = v
        else:
            b[k] = v
    return json.dumps(b).encode()


def astro_user(image):
    return "astro"


def create(data, config=STACK, image_user=astro_user):
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    return p.check_request("POST", "/v1.41/containers/create", data, config, set(), image_user)


def denied(decision, rule):
    assert not decision.allowed, decision
    assert decision.rule == rule, decision
    assert decision.message().startswith("docker-proxy: ") and f"(rule: {rule})" in decision.message()
    return decision.reason


# --------------------------------------------------------------------------------------------
# endpoints


@pytest.mark.parametrize("method,path,rule", [
    ("GET", "/_ping", "ping"),
    ("HEAD", "/_ping", "ping"),
    ("GET", "/v1.41/_ping", "ping"),
    ("GET", "/version", "version"),
    ("GET", "/v1.41/version", "version"),
    ("GET", "/v1.41/images/json?filters=%7B%22reference%22%3A%7B%22downlink%2Fastro%3Ax%22%3Atrue%7D%7D", "images.list"),
    ("GET", "/v1.41/images/downlink/astro:abc/json", "images.inspect"),
    ("GET", "/v1.41/images/downlink/astro%40sha256:0123/json", "images.inspect"),
    ("GET", "/images/debian:bookworm-slim/json", "images.inspect"),
])
def test_read_only_endpoints_are_allowed(method, path, rule):
    d = p.check_request(method, path, None, DEFAULT, set())
    assert d.allowed and d.rule == rule


def test_info_is_denied():
    # DockerOperator does not need it, and it tells a caller about the host (issue 13)
    denied(p.check_request("GET", "/v1.41/info", None, DEFAULT, set()), "endpoint")


@pytest.mark.parametrize("method,suffix,rule,action", [
    ("GET", "/json", "containers.inspect", None),
    ("GET", "/logs?stdout=1&stderr=1", "containers.logs", None),
    ("POST", "/start", "containers.start", None),
    ("POST", "/wait", "containers.wait", None),
    ("POST", "/attach?stream=1&stdout=1&stderr=1", "containers.attach", "attach"),
    ("POST", "/kill?signal=SIGTERM", "containers.kill", None),
    ("POST", "/stop?t=10", "containers.stop", None),
    ("DELETE", "?v=False&link=False&force=True", "containers.remove", "remove"),
])
def test_container_endpoints_only_on_own_containers(method, suffix, rule, action):
    target = f"/v1.41/containers/{CID}{suffix}"
    d = p.check_request(method, target, None, DEFAULT, {CID})
    assert d.allowed and d.rule == rule and d.action == action and d.container == CID
    reason = denied(p.check_request(method, f"/v1.41/containers/{OTHER}{suffix}", None, DEFAULT, {CID}), "ownership")
    assert "not created through docker-proxy" in reason


@pytest.mark.parametrize("ref", [CID[:12], CID[:20], "my-step", "downlink-daily_chain-calibrate-0123456789ab", "a.b_c-1",
                                 CID.upper(), CID + "x"])
def test_names_and_id_prefixes_are_resolved_first(ref):
    # the engine may resolve a name or prefix to any container: the server must look the full
    # id up and decide again on the request rewritten with it
    d = p.check_request("POST", f"/v1.41/containers/{ref}/start", None, DEFAULT, {CID})
    assert not d.allowed and d.rule == "ownership" and d.resolve and d.container == ref
    rewritten = p.with_container_id(f"/v1.41/containers/{ref}/wait?condition=removed", CID)
    assert rewritten == f"/v1.41/containers/{CID}/wait?condition=removed"
    assert p.check_request("POST", rewritten, None, DEFAULT, {CID}).allowed
    assert p.with_container_id(f"/containers/{ref}?force=1", OTHER) == f"/containers/{OTHER}?force=1"


@pytest.mark.parametrize("ref", [OTHER, "-x", ".x", "x" * 300])
def test_foreign_ids_and_odd_references_are_refused_outright(ref):
    d = p.check_request("POST", f"/containers/{ref}/start", None, DEFAULT, {CID})
    assert not d.allowed and d.rule == "ownership" and not d.resolve
    assert not p.check_request("POST", f"/containers//{CID}/start", None, DEFAULT, {CID}).allowed


@pytest.mark.parametrize("method,path,area", [
    ("POST", f"/v1.41/containers/{CID}/exec", "exec"),
    ("POST", "/v1.41/exec/abc/start", "exec"),
    ("POST", "/v1.41/build", "build"),
    ("POST", "/v1.41/images/create?fromImage=alpine", "image pull/import"),
    ("POST", "/v1.41/images/downlink/astro:abc/push", "image push/tag"),
    ("POST", "/v1.41/images/downlink/astro:abc/tag?repo=x", "image push/tag"),
    ("DELETE", "/v1.41/images/downlink/astro:abc", "image change"),
    ("POST", "/v1.41/images/load", "image load/save/search/prune"),
    ("POST", f"/v1.41/commit?container={CID}", "commit"),
    ("POST", "/v1.41/volumes/create", "volumes"),
    ("GET", "/v1.41/volumes", "volumes"),
    ("POST", "/v1.41/networks/create", "networks"),
    ("POST", "/v1.41/networks/downlink-net/connect", "networks"),
    ("POST", "/v1.41/swarm/init", "swarm"),
    ("POST", "/v1.41/services/create", "swarm"),
    ("POST", "/v1.41/plugins/pull", "plugins"),
    ("GET", "/v1.41/system/df", "system"),
    ("GET", "/v1.41/events", "system"),
    ("POST", "/v1.41/auth", "system"),
    ("PUT", f"/v1.41/containers/{CID}/archive?path=/", "container archive (copy files in/out)"),
    ("GET", f"/v1.41/containers/{CID}/archive?path=/", "container archive (copy files in/out)"),
    ("POST", f"/v1.41/containers/{CID}/update", "container update"),
    ("GET", f"/v1.41/containers/{CID}/export", "container export"),
    ("POST", f"/v1.41/containers/{CID}/restart", "container operation"),
    ("GET", "/v1.41/containers/json", "container listing/prune"),
    ("POST", "/v1.41/containers/prune", "container listing/prune"),
    ("GET", "/v1.41/containers/create", "not an endpoint DockerOperator needs"),
    ("POST", "/v1.41/_ping", "not an endpoint DockerOperator needs"),
    ("HEAD", "/v1.41/version", "not an endpoint DockerOperator needs"),
    ("get", "/_ping", "not an endpoint DockerOperator needs"),
])
def test_everything_else_is_denied(method, path, area):
    # even on the proxy's own container
    reason = denied(p.check_request(method, path, None, DEFAULT, {CID}), "endpoint")
    assert reason.endswith(f"({area})")
    assert CID not in reason  # ids are shown as {id}


def test_exec_on_own_container_names_the_rule():
    d = p.check_request("POST", f"/containers/{CID}/exec", b'{"Cmd":["sh"]}', DEFAULT, {CID})
    assert d.message() == ("docker-proxy: POST /containers/{id}/exec is not allowed (exec) (rule: endpoint)")


def test_only_create_may_have_a_body():
    # below API 1.24 the engine applied a HostConfig given to start: a body is never forwarded
    legacy = json.dumps({"Privileged": True, "Binds": ["/:/host"]}).encode()
    denied(p.check_request("POST", f"/v1.41/containers/{CID}/start", legacy, DEFAULT, {CID}), "body")
    assert p.check_request("POST", f"/v1.41/containers/{CID}/start", b"", DEFAULT, {CID}).allowed


@pytest.mark.parametrize("version", ["1.12", "1.23", "1.9"])
def test_old_api_versions_are_denied(version):
    denied(p.check_request("POST", f"/v{version}/containers/{CID}/start", None, DEFAULT, {CID}), "api-version")


@pytest.mark.parametrize("version", ["1.24", "1.41", "1.45", "2.0"])
def test_current_api_versions_are_fine(version):
    assert p.check_request("GET", f"/v{version}/_ping", None, DEFAULT, set()).allowed


@pytest.mark.parametrize("version,ok", [("1.41", True), ("1.041", True), ("1.30", True), ("1.42", False),
                                        ("1.99", False), ("2.0", False), ("1.23", False), ("1.11", False)])
def test_api_versions_outside_the_engines_range_are_denied(version, ok):
    # the engine answers those with an ordinary error and keeps the connection (issue 13)
    d = p.check_request("POST", f"/v{version}/containers/{CID}/attach?stream=1", None, DEFAULT, {CID},
                        api_range=((1, 12), (1, 41)))
    assert d.allowed if ok else denied(d, "api-version")


@pytest.mark.parametrize("suffix", [
    "/attach?stream=1;x", "/attach?stream=1&stream=0", "/attach?stream=1&detachKeys=ctrl-p", "/attach?stream=yes",
    "/attach?stream", "/logs?tail=1%3Bx", "/logs?follow=1&x=1", "/start?detachKeys=x", "/wait?condition=forever",
    "/kill?signal=$(x)", "?force=1&link=1", "/json?size=1%00", "/attach?stream=%zz",
])
def test_query_parameters_a_route_does_not_take_are_denied(suffix):
    method = "DELETE" if suffix.startswith("?") else "GET" if suffix.startswith(("/logs", "/json")) else "POST"
    denied(p.check_request(method, f"/v1.41/containers/{CID}{suffix}", None, DEFAULT, {CID}), "query")


def test_query_parameters_docker_py_sends_are_allowed():
    for method, suffix in [("POST", "/attach?logs=0&stdout=1&stderr=1&stream=1"), ("DELETE", "?v=False&link=False&force=False"),
                           ("GET", "/logs?stderr=1&stdout=1&timestamps=0&follow=1&tail=all"), ("POST", "/stop?t=10"),
                           ("POST", "/kill?signal=9")]:
        assert p.check_request(method, f"/v1.41/containers/{CID}{suffix}", None, DEFAULT, {CID}).allowed, suffix
    assert p.check_head("POST", "/v1.41/containers/create?name=downlink-x-1", True, DEFAULT, set()).allowed
    assert p.check_head("GET", "/v1.41/images/json?only_ids=0&all=0&filters=%7B%22reference%22%3A+%5B%22downlink%2Fastro%3Ax%22%5D%7D",
                        False, DEFAULT, set()).allowed


@pytest.mark.parametrize("target", [
    "http://docker/_ping",              # absolute form
    "_ping",
    "//_ping",
    "/v1.41//containers/create",
    "/containers/x/../create",
    "/containers/./create",
    "/images/a%2Fb/json",              # an escaped slash could be routed differently
    "/containers/%00/start",
    "/containers/%zz/start",
    "/containers/%2/start",
    "/containers/%25/start",
    "/_ping#x",
    "/v1..41/_ping",
    "/_ping?x=\x01",
    "/_ping?x=\u00e9",
    "/containers/\u00e9/start",
])
def test_malformed_targets_are_400(target):
    d = p.check_request("GET", target, None, DEFAULT, set())
    assert not d.allowed and d.status == 400 and d.rule == "malformed"


def test_percent_escapes_decode_like_the_engine():
    escaped = "".join(f"%{ord(c):02x}" for c in CID[:4]) + CID[4:]
    assert p.check_request("POST", f"/containers/{escaped}/start", None, DEFAULT, {CID}).allowed


# --------------------------------------------------------------------------------------------
# create


def test_the_step_body_docker_py_sends_is_allowed():
    d = create(STEP_BODY)
    assert d.allowed and d.action == "create" and d.image == "downlink/astro:abc"
    assert create(STEP_BODY, DEFAULT).allowed


def test_a_read_only_bind_under_an_allowed_source_is_allowed():
    mounts = STEP_BODY["HostConfig"]["Mounts"] + [
        {"Target": "/source", "Source": "/srv/nights", "Type": "bind", "ReadOnly": True},
        {"Target": "/n1", "Source": "/srv/nights/2026-11-24", "Type": "bind", "ReadOnly": True},
    ]
    assert create(body(hc_Mounts=mounts)).allowed


@pytest.mark.parametrize("image,ok", [
    ("downlink/astro:abc", True),
    ("downlink/anything@sha256:" + "a" * 64, True),
    ("debian:bookworm-slim", False),
    ("docker.io/library/alpine", False),
    ("downlinkevil/astro", False),
    ("localhost:5000/downlink/astro", False),
    ("sha256:" + "a" * 64, False),       # an image id could be any image
    ("DOWNLINK/astro", False),
])
def test_image_prefixes(image, ok):
    d = create(body(Image=image))
    if ok:
        assert d.allowed
    else:
        assert image in denied(d, "image")


def test_image_rules_from_env():
    cfg = p.Config.from_env({"PROXY_ALLOWED_IMAGES": "downlink/, registry.example/team/"})
    assert create(body(Image="registry.example/team/x:1"), cfg).allowed
    assert create(body(Image="debian"), p.Config.from_env({"PROXY_ALLOWED_IMAGES": "*"})).allowed
    denied(create(body(Image=None)), "image")
    denied(create({k: v for k, v in STEP_BODY.items() if k != "Image"}), "image")


@pytest.mark.parametrize("field,value,rule", [
    ("Privileged", True, "privileged"),
    ("Privileged", 1, "privileged"),
    ("CapAdd", ["SYS_ADMIN"], "cap-add"),
    ("CapAdd", ["ALL"], "cap-add"),
    ("Capabilities", ["CAP_SYS_ADMIN"], "cap-add"),
    ("Devices", [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}], "devices"),
    ("DeviceCgroupRules", ["b 8:* rmw"], "devices"),
    ("DeviceRequests", [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}], "devices"),
    ("Binds", ["/:/host"], "binds"),
    ("Binds", ["downlink-data:/data"], "binds"),
    ("VolumesFrom", ["other"], "volumes-from"),
    ("Sysctls", {"kernel.shm_rmid_forced": "1"}, "sysctls"),
    ("Links", ["postgres:db"], "links"),
    ("PortBindings", {"22/tcp": [{"HostPort": "2222"}]}, "ports"),
    ("PublishAllPorts", True, "ports"),
    ("CgroupParent", "/", "cgroup-parent"),
    ("VolumeDriver", "local", "volume-driver"),
    ("OomKillDisable", True, "oom-kill-disable"),
    ("MaskedPaths", [], "systempaths"),
    ("ReadonlyPaths", [], "systempaths"),
    ("Runtime", "sysbox-runc", "runtime"),
    ("PidMode", "host", "namespaces"),
    ("PidMode", "container:" + OTHER, "namespaces"),
    ("IpcMode", "host", "namespaces"),
    ("IpcMode", "container:" + OTHER, "namespaces"),
    ("UsernsMode", "host", "namespaces"),
    ("UTSMode", "host", "namespaces"),
    ("SecurityOpt", ["seccomp=unconfined"], "security-opt"),
    ("SecurityOpt", ["seccomp:unconfined"], "security-opt"),
    ("SecurityOpt", ["apparmor=unconfined"], "security-opt"),
    ("SecurityOpt", ["label=disable"], "security-opt"),
    ("SecurityOpt", ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'], "security-opt"),
    ("SecurityOpt", ["no-new-privileges", "label:type:spc_t"], "security-opt"),
    # not in the allow-list (DockerOperator sends none of these for a step)
    ("CgroupnsMode", "host", "namespaces"),
    ("Dns", ["1.1.1.1"], "not-allowed"),
    ("ExtraHosts", ["archive:10.0.0.1"], "not-allowed"),
    ("Ulimits", [{"Name": "nofile", "Soft": 1024, "Hard": 2048}], "not-allowed"),
    ("Capabilities", [], "cap-add"),  # an explicit empty set is not the default
])
def test_dangerous_host_settings_are_denied(field, value, rule):
    reason = denied(create(body(**{"hc_" + field: value})), rule)
    assert f"HostConfig.{field}" in reason
    # also when given at the top level of the body, which the engine reads when there is no
    # HostConfig (backward compatibility)...
    top = copy.deepcopy(STEP_BODY)
    del top["HostConfig"]
    top[field] = value
    assert f"body.{field}" in denied(create(top), rule)
    # ...or even next to one
    top = copy.deepcopy(STEP_BODY)
    top[field] = value
    denied(create(top), rule)


@pytest.mark.parametrize("field,value", [
    ("Privileged", False), ("Privileged", None), ("CapAdd", None), ("CapAdd", []),
    ("Devices", []), ("DeviceRequests", None), ("DeviceRequests", []), ("Binds", None),
    ("Binds", []), ("VolumesFrom", None), ("Sysctls", {}), ("Sysctls", None),
    ("SecurityOpt", ["no-new-privileges"]), ("SecurityOpt", ["no-new-privileges:true"]),
    ("SecurityOpt", None), ("PidMode", ""), ("IpcMode", "private"), ("IpcMode", "shareable"),
    ("UsernsMode", ""), ("CgroupnsMode", ""), ("Runtime", ""), ("CapDrop", ["ALL"]),
    ("ReadonlyRootfs", True), ("Init", True), ("ShmSize", 67108864), ("CgroupParent", ""),
    ("Dns", []), ("ExtraHosts", None), ("Ulimits", []), ("Tmpfs", {"/tmp": "size=64m,mode=1777"}),
    ("Mounts", [{"Target": "/tmp", "Type": "tmpfs", "TmpfsOptions": {"SizeBytes": 1000000}}]),
    ("NanoCpus", 1000000000), ("MemorySwap", -1), ("AutoRemove", True),
    ("LogConfig", {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}),
    ("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0}),
])
def test_harmless_host_settings_are_allowed(field, value):
    assert create(body(**{"hc_" + field: value})).allowed


def test_field_names_are_read_like_the_engine_reads_them():
    # Go's JSON decoder matches field names without regard to case
    for hc in ['{"privileged": true}', '{"PRIVILEGED": true}']:
        raw = ('{"Image": "downlink/astro:1", "HostConfig": %s}' % hc).encode()
        denied(create(raw), "privileged")
    raw = b'{"Image": "downlink/astro:1", "hostconfig": {"Memory": 1, "PidsLimit": 1, "NetworkMode": "host"}}'
    denied(create(raw), "network")
    # and decodes a repeated key INTO what the first one filled, so that both apply (issue 13:
    # this test used to say "the engine, too, takes the last one", which is wrong): any key
    # repeated in one object, ignoring case, is refused, at every level
    for raw in [b'{"Image": "downlink/astro:1", "HostConfig": {"Privileged": true}, "HostConfig": {}}',
                b'{"Image": "downlink/astro:1", "HostConfig": {"Privileged": false, "privileged": true}}',
                b'{"image": "debian", "Image": "downlink/astro:1"}',
                b'{"Image": "downlink/astro:1", "Labels": {"a": "1", "A": "2"}}',
                b'{"Image": "downlink/astro:1", "HostConfig": {"Mounts": [{"Type": "volume", "VolumeOptions": {}, "volumeoptions": {}}]}}']:
        assert "repeats" in denied(create(raw, DEFAULT), "duplicate-key")
    # Go folds some non-ASCII letters onto ASCII ones (KELVIN SIGN = k, LONG S = s): refused,
    # in map keys too (labels): no Unicode keys at all
    for raw in ['{"Image": "downlink/astro:1", "HostConfig": {"ſecurityOpt": ["seccomp=unconfined"]}}',
                '{"Image": "downlink/astro:1", "HostConfig": {"Mounts": [{"Type": "bind", "Key": 1}]}}',
                '{"Image": "downlink/astro:1", "Labels": {"ſ": "x"}}']:
        assert "non-ASCII" in denied(create(raw.encode(), DEFAULT), "key")
    # the forwarded body is the proxy's own, with the engine's spelling
    d = create(body(hc_NetworkMode=None) .replace(b'"Cmd"', b'"cMD"'), DEFAULT)
    assert d.allowed and b'"Cmd":["downlink"' in d.body and b"cMD" not in d.body


def test_what_is_forwarded_is_rebuilt_from_the_allowed_fields():
    d = create(STEP_BODY)
    sent = json.loads(d.body)
    assert sent == {
        "Tty": False, "OpenStdin": False, "StdinOnce": False, "AttachStdin": False, "AttachStdout": True,
        "AttachStderr": True, "Env": ["A=1"], "Cmd": ["downlink", "calibrate", "--night", "2026-11-24"],
        "Image": "downlink/astro:abc",
        "HostConfig": {"Memory": 2147483648, "NetworkMode": "downlink-net", "PidsLimit": 1024, "CpuShares": 1024,
                       "Mounts": [{"Type": "volume", "Source": "downlink-data", "Target": "/data", "ReadOnly": False},
                                  {"Type": "volume", "Source": "downlink_pgdata", "Target": "/pgdata", "ReadOnly": True}]}}


@pytest.mark.parametrize("change,says", [
    ({"hc_PidsLimit": None}, "PidsLimit is required"), ({"hc_PidsLimit": 0}, "PidsLimit is required"),
    ({"hc_PidsLimit": -1}, "PidsLimit is required"), ({"hc_Memory": None}, "Memory is required"),
    ({"hc_Memory": 0}, "Memory is required"), ({"HostConfig": None}, "no HostConfig"),
])
def test_memory_and_pid_limits_are_required(change, says):
    assert says in denied(create(body(**change)), "limits")


@pytest.mark.parametrize("network,ok", [
    ("downlink-net", True), ("none", True), ("host", False), ("HOST", False),
    ("container:" + OTHER, False), ("bridge", False), ("other-net", False), ("default", False),
])
def test_networks_with_an_allowed_list(network, ok):
    d = create(body(hc_NetworkMode=network))
    assert d.allowed if ok else denied(d, "network")


@pytest.mark.parametrize("network,ok", [
    ("downlink-net", True), ("bridge", True), ("default", True), ("none", True), ("", True),
    ("host", False), ("container:" + OTHER, False), ("Container:x", False),
    ("4f5e6d7c8b9a", False),  # could be the host network's id
])
def test_networks_by_default(network, ok):
    d = create(body(hc_NetworkMode=network), DEFAULT)
    assert d.allowed if ok else denied(d, "network")


def test_an_empty_network_mode_is_the_default_bridge():
    no_network = copy.deepcopy(STEP_BODY)
    del no_network["HostConfig"]["NetworkMode"]
    denied(create(no_network), "network")  # STACK allows downlink-net only
    assert create(no_network, DEFAULT).allowed


def test_networking_config_endpoints_are_checked():
    nc = {"EndpointsConfig": {"host": {}}}
    denied(create(body(NetworkingConfig=nc), DEFAULT), "network")
    nc = {"EndpointsConfig": {"downlink-net": {"Aliases": ["x"]}}}
    assert create(body(NetworkingConfig=nc)).allowed
    nc = {"EndpointsConfig": {"downlink-net": {"IPAMConfig": {"IPv4Address": "10.0.0.9"}}}}
    denied(create(body(NetworkingConfig=nc)), "not-allowed")
    nc = {"EndpointsConfig": {"Downlink-net": {}}}  # network names are case-sensitive
    denied(create(body(NetworkingConfig=nc)), "network")


def mount(**m):
    return body(hc_Mounts=[m])


@pytest.mark.parametrize("m,rule,says", [
    ({"Type": "bind", "Source": "/", "Target": "/host", "ReadOnly": True}, "bind", "bind mount of /"),
    ({"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/s", "ReadOnly": True}, "bind", "docker.sock"),
    ({"Type": "bind", "Source": "/srv/nights", "Target": "/source"}, "bind", "read-only"),
    ({"Type": "bind", "Source": "/srv/nights", "Target": "/source", "ReadOnly": False}, "bind", "read-only"),
    ({"Type": "bind", "Source": "/srv/nights/../../etc", "Target": "/e", "ReadOnly": True}, "bind", "absolute"),
    ({"Type": "bind", "Source": "/srv/nightsX", "Target": "/x", "ReadOnly": True}, "bind", "not under"),
    ({"Type": "bind", "Source": "srv/nights", "Target": "/x", "ReadOnly": True}, "bind", "absolute"),
    ({"Type": "bind", "Source": "/srv/nights", "Target": "/x", "ReadOnly": True,
      "BindOptions": {"Propagation": "rshared"}}, "bind", "propagation"),
    ({"Type": "volume", "Source": "other-data", "Target": "/d"}, "volume", "PROXY_ALLOWED_VOLUMES"),
    ({"Type": "volume", "Target": "/d"}, "volume", "anonymous"),
    ({"Type": "volume", "Source": "downlink_pgdata", "Target": "/pg"}, "volume", "read-only"),
    ({"Type": "volume", "Source": "downlink-data", "Target": "/d",
      "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}},
     "volume", "DriverConfig"),
    ({"Type": "npipe", "Source": "x", "Target": "/x"}, "mount-type", "npipe"),
    ({"Type": "BIND", "Source": "/", "Target": "/x"}, "mount-type", "BIND"),
    ({"Source": "/", "Target": "/x"}, "mount-type", "''"),
])
def test_mounts_that_are_denied(m, rule, says):
    assert says in denied(create(mount(**m)), rule)


def test_bind_reason_names_the_source():
    # DockerOperator falls back to mount_tmp_dir=False when the error names its tmp dir
    reason = denied(create(mount(Type="bind", Source="/tmp/airflowtmpab12", Target="/tmp/airflowtmp")), "bind")
    assert "/tmp/airflowtmpab12" in reason


@pytest.mark.parametrize("m", [
    {"Type": "volume", "Source": "downlink-data", "Target": "/d"},
    {"Type": "volume", "Source": "downlink-data", "Target": "/d", "ReadOnly": True},
    {"Type": "volume", "Source": "downlink_pgdata", "Target": "/pg", "ReadOnly": True},
    {"Type": "volume", "Source": "downlink-data", "Target": "/d", "VolumeOptions": {"NoCopy": True}},
    {"Type": "volume", "Source": "downlink-data", "Target": "/d", "VolumeOptions": {"DriverConfig": None}},
    {"Type": "tmpfs", "Target": "/scratch"},
    {"Type": "bind", "Source": "/srv/nights/", "Target": "/s", "ReadOnly": True, "BindOptions": {"Propagation": "rprivate"}},
    {"type": "bind", "source": "/srv/nights", "target": "/s", "readonly": True},
])
def test_mounts_that_are_allowed(m):
    assert create(mount(**m)).allowed


def test_volume_patterns():
    cfg = p.Config.from_env({"PROXY_ALLOWED_VOLUMES": "downlink-*, shared:ro"})
    assert create(mount(Type="volume", Source="downlink-data", Target="/d"), cfg).allowed
    assert create(mount(Type="volume", Source="downlink-test-data", Target="/d"), cfg).allowed
    assert create(mount(Type="volume", Source="shared", Target="/d", ReadOnly=True), cfg).allowed
    denied(create(mount(Type="volume", Source="shared", Target="/d"), cfg), "volume")
    denied(create(mount(Type="volume", Source="sharedX", Target="/d", ReadOnly=True), cfg), "volume")
    denied(create(mount(Type="volume", Source="other", Target="/d"), cfg), "volume")
    # default: any named volume; anonymous ones are refused (only the project's named volumes)
    assert create(mount(Type="volume", Source="anything", Target="/d"), DEFAULT).allowed
    denied(create(mount(Type="volume", Target="/d"), DEFAULT), "volume")


def test_binds_are_denied_by_default():
    denied(create(mount(Type="bind", Source="/srv/nights", Target="/s", ReadOnly=True), DEFAULT), "bind")


def test_mounts_at_the_top_level_are_checked_too():
    top = copy.deepcopy(STEP_BODY)
    del top["HostConfig"]
    top["Mounts"] = [{"Type": "bind", "Source": "/", "Target": "/host", "ReadOnly": True}]
    assert "body.Mounts is not allowed" in denied(create(top, DEFAULT), "not-allowed")


@pytest.mark.parametrize("user,root", [
    ("root", True), ("0", True), ("0:0", True), ("root:astro", True), ("000", True),
    ("1000", False), ("1000:0", False), ("astro", False), ("rooter", False),
])
def test_root_user(user, root):
    d = create(body(User=user), DEFAULT)  # on by default
    if root:
        denied(d, "root")
    else:
        assert d.allowed
    assert create(body(User=user), p.Config.from_env({"PROXY_DENY_ROOT": "0"})).allowed


def test_root_by_the_image_default_user():
    deny_root = p.Config.from_env({"PROXY_DENY_ROOT": "true"})
    assert create(body(), deny_root, image_user=lambda image: "astro").allowed
    assert "runs as root" in denied(create(body(), deny_root, image_user=lambda image: ""), "root")
    denied(create(body(), deny_root, image_user=lambda image: "0:0"), "root")
    assert create(body(), deny_root, image_user=lambda image: None).allowed  # no such image: the engine says so

    def broken(image):
        raise OSError("engine down")
    assert "could not be looked up" in denied(create(body(), deny_root, image_user=broken), "root")
    assert create(body(User="1000"), deny_root, image_user=broken).allowed


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b'"x"', b'{"Image": "downlink/a", "HostConfig": "x"}',
    b'{"Image": "downlink/a", "HostConfig": {"Mounts": "x"}}',
    b'{"Image": "downlink/a", "HostConfig": {"Mounts": ["x"]}}',
    b'{"Image": "downlink/a", "HostConfig": {"NetworkMode": 5}}',
    b'{"Image": "downlink/a", "HostConfig": {"SecurityOpt": [1]}}',
    b'{"Image": "downlink/a", "HostConfig": {"Memory": NaN}}',
    b'{"Image": "downlink/a"} trailing',
    b'{"Image": 5}',
    b'{"Image": "downlink/\xff"}',
    b'{"Image": "downlink/a", "Labels": ' + b"[" * 100000 + b"]" * 100000 + b"}",
], ids=lambda raw: raw[:40].decode("latin-1"))
def test_malformed_bodies_are_400(raw):
    d = create(raw)
    assert not d.allowed and d.status == 400 and d.rule == "malformed-body"


def test_config_from_env():
    cfg = p.Config.from_env({})
    assert cfg.allowed_images == ("downlink/",) and cfg.allowed_networks == ()
    assert cfg.allowed_bind_sources == () and [r.pattern for r in cfg.allowed_volumes] == ["*"]
    assert cfg.deny_root and not hasattr(cfg, "allow_info")
    cfg = p.Config.from_env({"PROXY_ALLOWED_BIND_SOURCES": "/srv/nights/, /mnt/x", "PROXY_ALLOWED_VOLUMES": "a,b:ro,c*"})
    assert cfg.allowed_bind_sources == ("/srv/nights", "/mnt/x")
    assert cfg.allowed_volumes == (p.VolumeRule("a"), p.VolumeRule("b", True), p.VolumeRule("c*"))
    with pytest.raises(ValueError):
        p.Config.from_env({"PROXY_ALLOWED_BIND_SOURCES": "relative/path"})
    assert "volumes=a,b:ro,c*" in cfg.describe()


def test_owned_containers_are_bounded():
    owned = p.OwnedContainers(limit=3)
    for i in range(5):
        owned.add(f"{i:064x}")
    assert len(owned) == 3 and f"{0:064x}" not in owned and f"{4:064x}" in owned
    owned.discard(f"{4:064x}")
    assert f"{4:064x}" not in owned and len(owned) == 2
    owned.discard("unknown")


def test_owned_containers_kept_in_a_file(tmp_path):
    path = tmp_path / "owned"
    owned = p.OwnedContainers(limit=3, path=str(path))
    ids = [f"{i:064x}" for i in range(5)]
    for cid in ids[:3]:
        owned.add(cid)
    owned.discard(ids[1])
    again = p.OwnedContainers(limit=3, path=str(path))
    assert ids[0] in again and ids[2] in again and ids[1] not in again and len(again) == 2
    for cid in ids[3:]:
        again.add(cid)  # over the limit: ids[0] is forgotten, in the file too
    with open(path, "a") as f:
        f.write("garbage\n+short\n")
    third = p.OwnedContainers(limit=3, path=str(path))
    assert [c for c in ids if c in third] == [ids[2], ids[3], ids[4]]
    assert path.read_text().splitlines() == [f"+{c}" for c in ids[2:]]  # compacted on load
    for i in range(20):  # the log is compacted as it grows
        third.add(f"{100 + i:064x}")
    assert len(path.read_text().splitlines()) <= 2 * 3 + 3
    assert len(p.OwnedContainers(limit=3, path=str(path))) == 3


# --------------------------------------------------------------------------------------------
# Host mounts of the registry (DOWNLINK_ALLOWED_MOUNTS: read-only or rw) and its secrets folder
# (read-only): compose joins DOWNLINK_SOURCE_MOUNT, DOWNLINK_ALLOWED_MOUNTS and
# DOWNLINK_SECRETS_DIR into PROXY_ALLOWED_BIND_SOURCES, empty items where one is unset.

MOUNTS = p.Config.from_env({
    "PROXY_ALLOWED_NETWORKS": "downlink-net",
    "PROXY_ALLOWED_VOLUMES": "downlink-data",
    "PROXY_ALLOWED_BIND_SOURCES": ",/grp/instrument:/scratch,/srv/downlink/secrets",
    "PROXY_ALLOWED_RW_BIND_SOURCES": "/grp/instrument:/scratch",
})


def bind(source, read_only=True, config=MOUNTS):
    return create(mount(Type="bind", Source=source, Target="/m", ReadOnly=read_only), config)


def test_bind_lists_take_colons_commas_and_empty_items():
    assert MOUNTS.allowed_bind_sources == ("/grp/instrument", "/scratch", "/srv/downlink/secrets")
    assert MOUNTS.allowed_rw_bind_sources == ("/grp/instrument", "/scratch")
    assert p.Config.from_env({"PROXY_ALLOWED_BIND_SOURCES": ",,"}).allowed_bind_sources == ()
    with pytest.raises(ValueError, match="PROXY_ALLOWED_RW_BIND_SOURCES"):
        p.Config.from_env({"PROXY_ALLOWED_RW_BIND_SOURCES": "scratch"})
    assert "rw-binds=/grp/instrument,/scratch" in MOUNTS.describe()


def test_rw_binds_only_under_the_rw_list():
    assert bind("/grp/instrument/data", read_only=False).allowed
    assert bind("/scratch", read_only=False).allowed
    assert bind("/grp/instrument/data").allowed  # read-only under the rw list: also fine
    assert "PROXY_ALLOWED_RW_BIND_SOURCES" in denied(bind("/srv/downlink/secrets/token", read_only=False), "bind")
    assert bind("/srv/downlink/secrets/token").allowed
    assert "not under" in denied(bind("/grp/instrumentX", read_only=False), "bind")


def test_without_an_rw_list_every_bind_stays_read_only():
    assert "read-only" in denied(bind("/srv/nights", read_only=False, config=STACK), "bind")


@pytest.mark.parametrize("source", ["/", "/etc", "/etc/shadow", "/var/lib/docker", "/var/lib/docker/volumes",
                                    "/var/run/docker.sock", "/run/docker.sock", "/proc/1", "/sys", "/dev/sda",
                                    "/var", "/run", "/var/lib"])
def test_system_paths_are_never_bound_even_when_a_list_allows_them(source):
    everything = p.Config.from_env({"PROXY_ALLOWED_NETWORKS": "downlink-net", "PROXY_ALLOWED_VOLUMES": "downlink-data",
                                    "PROXY_ALLOWED_BIND_SOURCES": "/", "PROXY_ALLOWED_RW_BIND_SOURCES": "/"})
    assert "never allowed" in denied(bind(source, config=everything), "bind")
    assert "never allowed" in denied(bind(source, read_only=False, config=everything), "bind")


def test_the_proxy_never_binds_what_the_registry_never_mounts():
    """The registry's check (plugins/downlink_airflow/host_mounts.py, stdlib only) and the proxy
    keep one list each (separate images); a path added to one only fails here."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[3] / "plugins" / "downlink_airflow" / "host_mounts.py"
    spec = importlib.util.spec_from_file_location("registry_host_mounts", path)
    host_mounts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host_mounts)
    import docker_proxy_create

    assert set(host_mounts.NEVER) == set(docker_proxy_create.NEVER_BIND)
