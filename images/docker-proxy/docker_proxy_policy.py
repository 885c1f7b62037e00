"""docker-proxy's policy: which Docker Engine API requests may reach the engine.

Pure functions, no network: `check_request(method, target, body, config, owned)` returns a
`Decision` (allowed or not, the rule that decided, a reason). The server (proxy.py) calls its two
halves before anything is forwarded: `check_head` on the request line (so that a refused
request's body is never read), then `check_create` on the body of a create. Tests call them
directly.

What is allowed (the API version prefix `/v1.NN` is optional):

  GET|HEAD /_ping, GET /version, GET /info           engine identity and version negotiation
  GET /images/json, GET /images/{name}/json          image lookups (DockerOperator, diagnostics)
  POST /containers/create                            only with a body that passes `check_create`
  GET /containers/{id}/json, GET .../logs,
  POST .../start|wait|attach|kill|stop,
  DELETE /containers/{id}                            only for containers this proxy created
                                                     ({id}: the full id; a name or id prefix is
                                                     looked up by the server, and the request
                                                     decided on and sent with the full id)

Everything else is denied (rule "endpoint"): exec, build, pull/push, commit, volumes, networks,
swarm, plugins, events, archive, update, ...

How the create body is read: the engine is written in Go, whose JSON decoder matches field names
case-insensitively and keeps the last of duplicate keys, and which (for backward compatibility)
also reads HostConfig fields from the top level of the body when there is no "HostConfig". The
checks below read the body the same way: field names are folded, the last duplicate wins,
non-ASCII field names are refused, and the host settings are checked both under "HostConfig"
and at the top level.
"""
import json
import os
import posixpath
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_ALLOWED_IMAGES = ("downlink/",)

TRUE_WORDS = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class VolumeRule:
    """One entry of PROXY_ALLOWED_VOLUMES: an exact name, `prefix*`, or `*`; `:ro` suffix = the
    volume may only be mounted read-only."""
    pattern: str
    read_only: bool = False

    def matches(self, name):
        if self.pattern.endswith("*"):
            return name.startswith(self.pattern[:-1])
        return name == self.pattern

    @classmethod
    def parse(cls, text):
        text = text.strip()
        if text.endswith(":ro"):
            return cls(text[:-3], True)
        if text.endswith(":rw"):
            text = text[:-3]
        return cls(text)


def _list(text):
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


@dataclass(frozen=True)
class Config:
    # Image references must start with one of these ("*": any image).
    allowed_images: tuple = DEFAULT_ALLOWED_IMAGES
    # Network names a container may use; empty: any except host, container:<id> and bare hex
    # strings (a network ID could name the host network).
    allowed_networks: tuple = ()
    # Host directories read-only bind mounts may come from (absolute prefixes); empty: no binds.
    allowed_bind_sources: tuple = ()
    # Named volumes that may be mounted.
    allowed_volumes: tuple = (VolumeRule("*"),)
    # Refuse containers that would run as root (User root/0, or empty with a root image).
    deny_root: bool = False
    allow_info: bool = True

    @classmethod
    def from_env(cls, env):
        images = _list(env.get("PROXY_ALLOWED_IMAGES")) or DEFAULT_ALLOWED_IMAGES
        volumes = _list(env.get("PROXY_ALLOWED_VOLUMES")) or ("*",)
        binds = tuple(posixpath.normpath(p) for p in _list(env.get("PROXY_ALLOWED_BIND_SOURCES")))
        for p in binds:
            if not p.startswith("/"):
                raise ValueError(f"PROXY_ALLOWED_BIND_SOURCES: {p!r} is not an absolute path")
        return cls(
            allowed_images=images,
            allowed_networks=_list(env.get("PROXY_ALLOWED_NETWORKS")),
            allowed_bind_sources=binds,
            allowed_volumes=tuple(VolumeRule.parse(v) for v in volumes),
            deny_root=(env.get("PROXY_DENY_ROOT") or "").strip().lower() in TRUE_WORDS,
            allow_info=(env.get("PROXY_ALLOW_INFO") or "1").strip().lower() in TRUE_WORDS,
        )

    def describe(self):
        return (f"images={','.join(self.allowed_images)} "
                f"networks={','.join(self.allowed_networks) or '(any but host)'} "
                f"binds={','.join(self.allowed_bind_sources) or '(none)'} "
                f"volumes={','.join(r.pattern + (':ro' if r.read_only else '') for r in self.allowed_volumes)} "
                f"deny_root={int(self.deny_root)}")


# --------------------------------------------------------------------------------------------
# Decisions


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    reason: str
    # What the server must do around forwarding: None, "create" (record the new container),
    # "remove" (forget it on success), "attach" (relay both ways after the upgrade).
    action: str = None
    container: str = None  # the {id} of /containers/{id}/...
    image: str = None      # the image of a create (for the root check)
    status: int = 403      # HTTP status of a refusal (400: malformed)
    # A container named by a name or id prefix: the server asks the engine for its full id,
    # then decides again on the request rewritten with that id (`with_container_id`).
    resolve: bool = False

    def message(self):
        return f"docker-proxy: {self.reason} (rule: {self.rule})"


def allow(rule, reason="allowed", **kw):
    return Decision(True, rule, reason, **kw)


def deny(rule, reason, status=403, **kw):
    return Decision(False, rule, reason, status=status, **kw)


class OwnedContainers:
    """Full ids of the containers created through the proxy; bounded (the oldest are forgotten
    first) and thread-safe. Only full ids count: the engine resolves a full id before names and
    id prefixes, so a full id cannot be made to point at another container (names and prefixes
    are resolved to a full id by the server first, see `Decision.resolve`).

    With `path`, the set is also kept in that file (an append-only log of "+id" / "-id" lines,
    compacted on start and when it grows), so that a restarted proxy still knows the containers
    it created: a step whose scheduler was lost can adopt its container afterwards."""

    def __init__(self, limit=10000, path=None):
        self.limit = limit
        self.path = path
        self._ids = OrderedDict()
        self._lock = threading.Lock()
        self._file = None
        self._appended = 0
        if path:
            self._load()

    def _load(self):
        try:
            with open(self.path, encoding="ascii", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if FULL_ID.fullmatch(line[1:]) and line[0] in "+-":
                        if line[0] == "+":
                            self._ids[line[1:]] = True
                            self._ids.move_to_end(line[1:])
                        else:
                            self._ids.pop(line[1:], None)
        except FileNotFoundError:
            pass
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        self._compact()

    def _compact(self):
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.writelines(f"+{cid}\n" for cid in self._ids)
        os.replace(tmp, self.path)
        if self._file:
            self._file.close()
        self._file = open(self.path, "a", encoding="ascii", buffering=1)
        self._appended = 0

    def _log(self, line):
        if self._file:
            self._file.write(line + "\n")
            self._appended += 1
            if self._appended > 2 * self.limit:
                self._compact()

    def add(self, container_id):
        with self._lock:
            self._ids[container_id] = True
            self._ids.move_to_end(container_id)
            self._log(f"+{container_id}")
            while len(self._ids) > self.limit:
                old, _ = self._ids.popitem(last=False)
                self._log(f"-{old}")

    def discard(self, container_id):
        with self._lock:
            if self._ids.pop(container_id, None):
                self._log(f"-{container_id}")

    def __contains__(self, container_id):
        with self._lock:
            return container_id in self._ids

    def __len__(self):
        with self._lock:
            return len(self._ids)


# --------------------------------------------------------------------------------------------
# Paths

VERSION_PREFIX = re.compile(r"^/v([0-9.]+)(?=/)")
# Below API 1.24 the engine still takes a HostConfig in the body of POST /containers/{id}/start
# (and other legacy forms): such versions are refused. docker-py needs 1.24 or newer anyway.
MIN_API_VERSION = (1, 24)
PERCENT = re.compile(r"%(..)?")
FULL_ID = re.compile(r"[0-9a-f]{64}")
# A container name or id prefix, as the engine accepts them.
CONTAINER_REF = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")
CONTAINER_PATH = re.compile(r"(?P<prefix>(/v[0-9.]+)?/containers/)(?P<ref>[^/?]+)(?P<rest>[^?]*)")

# The endpoints that are allowed: (method, regex on the path without version, rule, kind).
# kind: None = no further check; "owned" = the container must be one the proxy created.
ROUTES = [
    ("GET", r"/_ping", "ping", None),
    ("HEAD", r"/_ping", "ping", None),
    ("GET", r"/version", "version", None),
    ("GET", r"/info", "info", None),
    ("GET", r"/images/json", "images.list", None),
    ("GET", r"/images/(?P<image>.+)/json", "images.inspect", None),
    ("POST", r"/containers/create", "containers.create", "create"),
    ("GET", r"/containers/(?P<id>[^/]+)/json", "containers.inspect", "owned"),
    ("GET", r"/containers/(?P<id>[^/]+)/logs", "containers.logs", "owned"),
    ("POST", r"/containers/(?P<id>[^/]+)/start", "containers.start", "owned"),
    ("POST", r"/containers/(?P<id>[^/]+)/wait", "containers.wait", "owned"),
    ("POST", r"/containers/(?P<id>[^/]+)/attach", "containers.attach", "owned"),
    ("POST", r"/containers/(?P<id>[^/]+)/kill", "containers.kill", "owned"),
    ("POST", r"/containers/(?P<id>[^/]+)/stop", "containers.stop", "owned"),
    ("DELETE", r"/containers/(?P<id>[^/]+)", "containers.remove", "owned"),
]
ROUTES = [(m, re.compile(p + r"\Z"), rule, kind) for m, p, rule, kind in ROUTES]

# Names for what is refused, so that a denial says what it was (first match).
DENIED_AREAS = [
    (r"/containers/[^/]+/exec|/exec/", "exec"),
    (r"/containers/[^/]+/archive", "container archive (copy files in/out)"),
    (r"/containers/[^/]+/update", "container update"),
    (r"/containers/[^/]+/export", "container export"),
    (r"/containers/[^/]+/(rename|pause|unpause|restart|resize|top|changes|stats)", "container operation"),
    (r"/containers/(json|prune)", "container listing/prune"),
    (r"/commit", "commit"),
    (r"/build|/session", "build"),
    (r"/images/create", "image pull/import"),
    (r"/images/[^/]+(/[^/]+)*/(push|tag)", "image push/tag"),
    (r"/images/(load|get|search|prune)|/images/.+/get", "image load/save/search/prune"),
    (r"/images/", "image change"),
    (r"/volumes", "volumes"),
    (r"/networks", "networks"),
    (r"/(swarm|nodes|services|tasks|secrets|configs)", "swarm"),
    (r"/plugins", "plugins"),
    (r"/(events|system|auth|distribution|grpc)", "system"),
]
DENIED_AREAS = [(re.compile(p), name) for p, name in DENIED_AREAS]


def split_target(target):
    """'/v1.41/containers/x/start?y=1' -> ('/containers/x/start', 'y=1', (1, 41)), after checking
    that the path means to the engine exactly what it means here. Raises ValueError when not."""
    if not target.startswith("/"):
        raise ValueError("the request target must be a path (origin form)")
    if not target.isascii() or any(ord(c) < 0x21 or ord(c) == 0x7f for c in target):
        raise ValueError("control character, space or non-ASCII byte in the request target")
    if "#" in target:
        raise ValueError("fragment in the request target")
    path, _, query = target.partition("?")
    for m in PERCENT.finditer(path):
        code = (m.group(1) or "").lower()
        if not re.fullmatch(r"[0-9a-f]{2}", code):
            raise ValueError("bad percent-escape in the path")
        if code in ("2f", "25", "00", "5c") or int(code, 16) < 0x20:
            raise ValueError(f"percent-escape %{code} is not accepted in the path")
    decoded = re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), path)
    if any(ord(c) < 0x21 or ord(c) == 0x7f for c in decoded):
        raise ValueError("control character or space in the path")
    if "//" in decoded or "/./" in decoded + "/" or "/../" in decoded + "/" or "\\" in decoded:
        raise ValueError("the path is not in canonical form")
    m = VERSION_PREFIX.match(decoded)
    if not m:
        return decoded, query, None
    try:
        version = tuple(int(x) for x in m.group(1).split("."))
    except ValueError:
        raise ValueError(f"bad API version {m.group(1)!r}")
    return decoded[m.end():], query, version


def check_head(method, target, has_body, config, owned):
    """The decision on a request's method, target and whether it has a body. For a create that
    passes, the body must still go through `check_create` (action "create")."""
    try:
        path, _query, version = split_target(target)
    except ValueError as e:
        return deny("malformed", str(e), status=400)
    if version is not None and version < MIN_API_VERSION:
        return deny("api-version", f"API version {'.'.join(map(str, version))} is older than "
                    f"{'.'.join(map(str, MIN_API_VERSION))}")
    for m, regex, rule, kind in ROUTES:
        match = regex.match(path)
        if match is None or m != method:
            continue
        if rule == "info" and not config.allow_info:
            break
        if kind == "create":
            return allow(rule, "create: the body is checked next", action="create")
        if has_body:
            # e.g. a HostConfig in the body of a legacy start: only create may carry a body
            return deny("body", f"{method} {generic(path)} must not have a body")
        if kind is None:
            return allow(rule)
        cid = match.group("id")
        if cid not in owned:
            reason = (f"container {cid[:80]!r} was not created through docker-proxy; "
                      f"{method} {generic(path)} is only allowed on its own containers")
            resolve = not FULL_ID.fullmatch(cid) and bool(CONTAINER_REF.fullmatch(cid))
            return deny("ownership", reason, container=cid, resolve=resolve)
        action = {"containers.remove": "remove", "containers.attach": "attach"}.get(rule)
        return allow(rule, action=action, container=cid)
    return deny("endpoint", f"{method} {generic(path)} is not allowed ({area(path)})")


def with_container_id(target, container_id):
    """The target with its /containers/{ref} segment replaced by the full id: the engine then
    acts on exactly the container that was checked."""
    m = CONTAINER_PATH.match(target)
    if not m:
        raise ValueError("not a container path")
    query = target[m.end():]
    return f"{m.group('prefix')}{container_id}{m.group('rest')}{query}"


def check_request(method, target, body, config, owned, image_user=None):
    """The whole decision on one request. body: bytes (None or b"" when there is none); owned:
    supports `container_id in owned`; image_user: optional callable image -> the User the image
    runs as ("" = root by default; None = image not found), for PROXY_DENY_ROOT."""
    decision = check_head(method, target, bool(body), config, owned)
    if decision.allowed and decision.action == "create":
        return check_create(body, config, image_user)
    return decision


def generic(path):
    """/containers/abc123/start -> /containers/{id}/start (for messages and logs)."""
    return re.sub(r"^/containers/(?!create\b|json\b|prune\b)[^/]+", "/containers/{id}", path)


def area(path):
    for regex, name in DENIED_AREAS:
        if regex.match(path):
            return name
    return "not an endpoint DockerOperator needs"


# --------------------------------------------------------------------------------------------
# The create body, read as the engine's Go JSON decoder reads it

MISSING = object()


class Obj:
    """A JSON object as the list of its (key, value) pairs, duplicates kept, in order."""
    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs

    def field(self, name):
        """A struct field the Go way: the last key equal to `name` ignoring ASCII case."""
        want = name.lower()
        value = MISSING
        for k, v in self.pairs:
            if k.lower() == want:
                value = v
        return value

    def non_ascii_keys(self):
        return [k for k, _ in self.pairs if not k.isascii()]


class BodyError(ValueError):
    pass


def _struct(value, where):
    """value must be an object or null/absent; returns the Obj or None."""
    if value is MISSING or value is None:
        return None
    if not isinstance(value, Obj):
        raise BodyError(f"{where} must be an object")
    bad = value.non_ascii_keys()
    if bad:
        raise BodyError(f"{where}: non-ASCII field name {bad[0]!r}")
    return value


def _present(value):
    """Anything but absent, null, false, 0, "" and empty lists/objects."""
    if value is MISSING or value is None or value is False or value == 0 or value == "" or value == []:
        return False
    if isinstance(value, Obj) and not value.pairs:
        return False
    return True


def _str(value, where):
    if value is MISSING or value is None:
        return ""
    if not isinstance(value, str):
        raise BodyError(f"{where} must be a string")
    return value


def _list_of(value, where):
    if value is MISSING or value is None:
        return []
    if not isinstance(value, list):
        raise BodyError(f"{where} must be a list")
    return value


def parse_body(body):
    if not body:
        raise BodyError("the create request has no body")
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError:
        raise BodyError("the body is not UTF-8")

    def no_constants(name):
        raise BodyError(f"{name} is not JSON")
    try:
        data = json.loads(text, object_pairs_hook=Obj, parse_constant=no_constants)
    except ValueError as e:
        raise BodyError(f"the body is not JSON: {e}")
    except RecursionError:
        raise BodyError("the body is nested too deeply")
    if not isinstance(data, Obj):
        raise BodyError("the body must be a JSON object")
    return data


def is_root_user(user):
    """'root', '0', 'root:x', '0:0', '000' -> True."""
    name = user.split(":", 1)[0].strip()
    return name == "root" or (name.isdigit() and int(name) == 0)


HOST_FLAGS = [  # boolean HostConfig fields that must not be true
    ("Privileged", "privileged", "privileged containers are not allowed"),
    ("PublishAllPorts", "ports", "publishing ports on the host is not allowed"),
    ("OomKillDisable", "oom-kill-disable", "OomKillDisable is not allowed"),
]
HOST_LISTS = [  # HostConfig fields that must be absent, null or empty
    ("CapAdd", "cap-add", "adding capabilities is not allowed"),
    ("Capabilities", "cap-add", "setting the capability set is not allowed"),
    ("Devices", "devices", "host devices are not allowed"),
    ("DeviceCgroupRules", "devices", "device cgroup rules are not allowed"),
    ("DeviceRequests", "devices", "device requests (GPUs) are not allowed"),
    ("Binds", "binds", "HostConfig.Binds are not allowed (use Mounts)"),
    ("VolumesFrom", "volumes-from", "VolumesFrom is not allowed"),
    ("Sysctls", "sysctls", "sysctls are not allowed"),
    ("Links", "links", "links to other containers are not allowed"),
    ("PortBindings", "ports", "publishing ports on the host is not allowed"),
    ("CgroupParent", "cgroup-parent", "CgroupParent is not allowed"),
    ("VolumeDriver", "volume-driver", "volume drivers are not allowed"),
]
SAFE_SECURITY_OPTS = {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}
NAMESPACES = [  # field, allowed values (anything else, e.g. host or container:<id>, is refused)
    ("PidMode", {""}),
    ("IpcMode", {"", "private", "shareable", "none"}),
    ("UTSMode", {""}),
    ("UsernsMode", {""}),
    ("CgroupnsMode", {"", "private", "host"}),
]


def check_host_config(hc, where, config):
    """Raises Refused for the first setting that is not allowed."""
    for name, rule, reason in HOST_FLAGS:
        if _present(hc.field(name)):
            raise Refused(rule, f"{where}.{name}: {reason}")
    for name, rule, reason in HOST_LISTS:
        if _present(hc.field(name)):
            raise Refused(rule, f"{where}.{name}: {reason}")
    # MaskedPaths/ReadonlyPaths: any explicit value (even []) replaces the engine's defaults
    # (this is how `--security-opt systempaths=unconfined` works).
    for name in ("MaskedPaths", "ReadonlyPaths"):
        if hc.field(name) not in (MISSING, None):
            raise Refused("systempaths", f"{where}.{name}: changing the masked/read-only /proc paths is not allowed")
    for name, allowed in NAMESPACES:
        value = _str(hc.field(name), f"{where}.{name}")
        if value not in allowed:
            raise Refused("namespaces", f"{where}.{name}={value!r} is not allowed")
    runtime = _str(hc.field("Runtime"), f"{where}.Runtime")
    if runtime not in ("", "runc"):
        raise Refused("runtime", f"{where}.Runtime={runtime!r} is not allowed")
    # Only no-new-privileges: seccomp=unconfined, apparmor=unconfined, label=disable, and custom
    # seccomp/apparmor/SELinux profiles (which can allow everything) are refused.
    for opt in _list_of(hc.field("SecurityOpt"), f"{where}.SecurityOpt"):
        if not isinstance(opt, str):
            raise BodyError(f"{where}.SecurityOpt must be a list of strings")
        if opt not in SAFE_SECURITY_OPTS:
            what = "unconfined" if "unconfined" in opt.lower() else "only no-new-privileges is accepted"
            raise Refused("security-opt", f"{where}.SecurityOpt {opt[:60]!r} is not allowed ({what})")
    network = _str(hc.field("NetworkMode"), f"{where}.NetworkMode")
    if network:
        check_network(network, f"{where}.NetworkMode", config)
    for i, m in enumerate(_list_of(hc.field("Mounts"), f"{where}.Mounts")):
        check_mount(m, f"{where}.Mounts[{i}]", config)


def check_network(name, where, config):
    low = name.lower()
    if low == "host":
        raise Refused("network", f"{where}={name!r}: the host network is not allowed")
    if low.startswith("container:"):
        raise Refused("network", f"{where}={name!r}: joining another container's network is not allowed")
    if name == "none":
        return
    if config.allowed_networks:
        if name not in config.allowed_networks:
            raise Refused("network", f"{where}={name!r} is not in PROXY_ALLOWED_NETWORKS")
    elif re.fullmatch(r"[0-9a-f]+", name):
        raise Refused("network", f"{where}={name!r}: network IDs are not accepted, use the network's name")


def check_mount(m, where, config):
    m = _struct(m, where)
    if m is None:
        raise BodyError(f"{where} must be an object")
    mtype = _str(m.field("Type"), f"{where}.Type")
    source = _str(m.field("Source"), f"{where}.Source")
    read_only = m.field("ReadOnly") is True
    if mtype == "bind":
        path = posixpath.normpath(source) if source else ""
        if not source.startswith("/") or ".." in source.split("/"):
            raise Refused("bind", f"{where}: bind mount of {source!r}: the source must be an absolute path")
        if not any(path == p or path.startswith(p.rstrip("/") + "/") for p in config.allowed_bind_sources):
            raise Refused("bind", f"{where}: bind mount of {source} is not under PROXY_ALLOWED_BIND_SOURCES "
                          f"({', '.join(config.allowed_bind_sources) or 'none allowed'})")
        if not read_only:
            raise Refused("bind", f"{where}: bind mount of {source} must be read-only")
        bind_options = _struct(m.field("BindOptions"), f"{where}.BindOptions")
        if bind_options is not None:
            prop = _str(bind_options.field("Propagation"), f"{where}.BindOptions.Propagation")
            if prop not in ("", "private", "rprivate", "slave", "rslave"):
                raise Refused("bind", f"{where}: bind propagation {prop!r} is not allowed")
    elif mtype == "volume":
        options = _struct(m.field("VolumeOptions"), f"{where}.VolumeOptions")
        if options is not None and _present(options.field("DriverConfig")):
            raise Refused("volume", f"{where}: VolumeOptions.DriverConfig is not allowed "
                          "(a volume driver's options can mount host paths)")
        rules = [r for r in config.allowed_volumes if r.matches(source)] if source else \
            [r for r in config.allowed_volumes if r.pattern == "*"]
        if not rules:
            raise Refused("volume", f"{where}: volume {source or '(anonymous)'!r} is not in PROXY_ALLOWED_VOLUMES")
        if all(r.read_only for r in rules) and not read_only:
            raise Refused("volume", f"{where}: volume {source!r} may only be mounted read-only")
    elif mtype == "tmpfs":
        pass
    else:
        raise Refused("mount-type", f"{where}: mount type {mtype!r} is not allowed")


class Refused(Exception):
    def __init__(self, rule, reason):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def check_create(body, config, image_user=None):
    """The decision on a POST /containers/create body (bytes)."""
    try:
        top = _struct(parse_body(body), "body")
        image = _str(top.field("Image"), "Image")
        if not image:
            raise Refused("image", "the container has no Image")
        if "*" not in config.allowed_images and not any(image.startswith(p) for p in config.allowed_images):
            raise Refused("image", f"image {image!r} does not start with an allowed prefix "
                          f"(PROXY_ALLOWED_IMAGES={','.join(config.allowed_images)})")
        # The engine takes HostConfig fields from the top level when "HostConfig" is absent:
        # check both places.
        check_host_config(top, "body", config)
        hc = _struct(top.field("HostConfig"), "HostConfig")
        if hc is not None:
            check_host_config(hc, "HostConfig", config)
        # The network the container gets: empty means the engine's default (bridge).
        if not _str((hc or top).field("NetworkMode"), "NetworkMode"):
            check_network("default", "HostConfig.NetworkMode (empty: default)", config)
        nc = _struct(top.field("NetworkingConfig"), "NetworkingConfig")
        if nc is not None:
            endpoints = nc.field("EndpointsConfig")
            if endpoints not in (MISSING, None):
                if not isinstance(endpoints, Obj):
                    raise BodyError("NetworkingConfig.EndpointsConfig must be an object")
                for name, _ in endpoints.pairs:  # a map: names are exact, every key counts
                    check_network(name, "NetworkingConfig.EndpointsConfig", config)
        user = _str(top.field("User"), "User")
        if config.deny_root:
            if user and is_root_user(user):
                raise Refused("root", f"User {user!r}: running as root is not allowed (PROXY_DENY_ROOT)")
            if not user and image_user is not None:
                try:
                    default = image_user(image)
                except Exception as e:  # the engine could not be asked: refuse rather than guess
                    raise Refused("root", f"no User given and the user of image {image!r} "
                                  f"could not be looked up ({e}) (PROXY_DENY_ROOT)")
                # None: no such image (the engine will say so)
                if default is not None and (default == "" or is_root_user(default)):
                    raise Refused("root", f"no User given and image {image!r} runs as "
                                  f"{default or 'root'}: running as root is not allowed (PROXY_DENY_ROOT)")
    except BodyError as e:
        return deny("malformed-body", str(e), status=400)
    except Refused as e:
        return deny(e.rule, e.reason)
    return allow("containers.create", "allowed", action="create", image=image)
