"""docker-proxy's policy: which Docker Engine API requests may reach the engine.

Pure functions, no network: `check_request(method, target, body, config, owned)` returns a
`Decision` (allowed or not, the rule that decided, a reason). The server (proxy.py) calls its two
halves before anything is forwarded: `check_head` on the request line (so that a refused
request's body is never read), then `check_create` on the body of a create. Tests call them
directly.

What is allowed (the API version prefix `/v1.NN` is optional; when given it must be within the
engine's own MinAPIVersion..ApiVersion and at least 1.24). Each route takes only the query
parameters listed in QUERY, each once, with a value of the listed form:

  GET|HEAD /_ping, GET /version                       engine identity and version negotiation
  GET /images/json, GET /images/{name}/json          image lookups (DockerOperator, diagnostics)
  POST /containers/create                            only with a body that passes
                                                     docker_proxy_create (an allow-list; the
                                                     proxy forwards its own serialisation)
  GET /containers/{id}/json, GET .../logs,
  POST .../start|wait|attach|kill|stop,
  DELETE /containers/{id}                            only for containers this proxy created
                                                     ({id}: the full id; a name or id prefix is
                                                     looked up by the server, and the request
                                                     decided on and sent with the full id)

Everything else is denied (rule "endpoint"): /info, exec, build, pull/push, commit, volumes,
networks, swarm, plugins, events, archive, update, ...
"""
import os
import posixpath
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import docker_proxy_create as create

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


def _paths(name, env):
    """A list of absolute host paths, separated by ',' or ':' (compose joins several settings into
    one with empty items where one is unset: they are skipped), normalised."""
    items = tuple(posixpath.normpath(p.strip()) for p in (env.get(name) or "").replace(":", ",").split(",") if p.strip())
    for p in items:
        if not p.startswith("/"):
            raise ValueError(f"{name}: {p!r} is not an absolute path")
    return items


@dataclass(frozen=True)
class Config:
    # Image references must start with one of these ("*": any image).
    allowed_images: tuple = DEFAULT_ALLOWED_IMAGES
    # Network names a container may use; empty: any except host, container:<id> and bare hex
    # strings (a network ID could name the host network).
    allowed_networks: tuple = ()
    # Host directories read-only bind mounts may come from (absolute prefixes); empty: no binds.
    allowed_bind_sources: tuple = ()
    # Host directories writable (rw) bind mounts may come from; read-only binds may too.
    allowed_rw_bind_sources: tuple = ()
    # Named volumes that may be mounted.
    allowed_volumes: tuple = (VolumeRule("*"),)
    # Refuse containers that would run as root (User root/0, or empty with a root image).
    deny_root: bool = True

    @classmethod
    def from_env(cls, env):
        images = _list(env.get("PROXY_ALLOWED_IMAGES")) or DEFAULT_ALLOWED_IMAGES
        volumes = _list(env.get("PROXY_ALLOWED_VOLUMES")) or ("*",)
        return cls(
            allowed_images=images,
            allowed_networks=_list(env.get("PROXY_ALLOWED_NETWORKS")),
            allowed_bind_sources=_paths("PROXY_ALLOWED_BIND_SOURCES", env),
            allowed_rw_bind_sources=_paths("PROXY_ALLOWED_RW_BIND_SOURCES", env),
            allowed_volumes=tuple(VolumeRule.parse(v) for v in volumes),
            deny_root=(env.get("PROXY_DENY_ROOT") or "1").strip().lower() in TRUE_WORDS,
        )

    def describe(self):
        return (f"images={','.join(self.allowed_images)} "
                f"networks={','.join(self.allowed_networks) or '(any but host)'} "
                f"binds={','.join(self.allowed_bind_sources) or '(none)'} "
                f"rw-binds={','.join(self.allowed_rw_bind_sources) or '(none)'} "
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
    body: bytes = None     # an allowed create: the body to forward instead of the client's

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


def parse_version(text):
    """'1.41' -> (1, 41); ValueError when it is not a version."""
    if not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,4}){0,2}", str(text)):
        raise ValueError(f"bad API version {str(text)[:20]!r}")
    return tuple(int(x) for x in str(text).split("."))


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
    return decoded[m.end():], query, parse_version(m.group(1))


BOOL = r"(?i)0|1|true|false"
INT = r"-?[0-9]{1,12}"
# The query parameters each route takes, and what their values may be (regex, whole value after
# percent-decoding). Anything else, a repeated parameter, or a ';' is refused: the engine's Go
# URL parser rejects some of these after a route has been matched (e.g. `stream=1;x`), which
# once let an attach end in an ordinary error on a connection still open.
QUERY = {
    "images.list": {"all": BOOL, "digests": BOOL, "only_ids": BOOL, "filters": r"\{[\x20-\x7e]{0,2000}\}",
                    "filter": r"[A-Za-z0-9._/:@-]{1,255}"},
    "containers.create": {"name": r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}", "platform": r"[a-z0-9_/.-]{0,64}"},
    "containers.inspect": {"size": BOOL},
    "containers.logs": {"stdout": BOOL, "stderr": BOOL, "timestamps": BOOL, "follow": BOOL,
                        "tail": r"all|[0-9]{1,12}", "since": r"[0-9]{1,12}(\.[0-9]{1,9})?",
                        "until": r"[0-9]{1,12}(\.[0-9]{1,9})?"},
    "containers.wait": {"condition": r"not-running|next-exit|removed"},
    "containers.attach": {"logs": BOOL, "stream": BOOL, "stdin": BOOL, "stdout": BOOL, "stderr": BOOL},
    "containers.kill": {"signal": r"(SIG)?[A-Z0-9+-]{1,16}|[0-9]{1,2}"},
    "containers.stop": {"t": INT, "signal": r"(SIG)?[A-Z0-9+-]{1,16}|[0-9]{1,2}"},
    "containers.remove": {"v": BOOL, "force": BOOL, "link": r"(?i)0|false"},
}
QUERY_PART = re.compile(r"[A-Za-z0-9_.~%+-]*")


def check_query(rule, query):
    """None when the query is one the route takes, else the reason it is refused."""
    if not query:
        return None
    allowed = QUERY.get(rule, {})
    seen = set()
    for part in query.split("&"):
        key, eq, value = part.partition("=")
        if not QUERY_PART.fullmatch(key) or not QUERY_PART.fullmatch(value):
            return f"query parameter {printable_q(part)!r} has a character the proxy does not accept"
        try:
            key, value = unquote_strict(key), unquote_strict(value)
        except ValueError as e:
            return f"query parameter {printable_q(part)!r}: {e}"
        if key in seen:
            return f"query parameter {key!r} is repeated"
        seen.add(key)
        if key not in allowed:
            return (f"query parameter {printable_q(key)!r} is not taken by this endpoint"
                    + (f" (only {', '.join(sorted(allowed))})" if allowed else " (it takes none)"))
        if not re.fullmatch(allowed[key], value):
            return f"query parameter {key}={printable_q(value)!r} is not an accepted value"
    return None


def unquote_strict(text):
    text = text.replace("+", " ")
    if re.search(r"%(?![0-9a-fA-F]{2})", text):
        raise ValueError("bad percent-escape")
    out = re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)
    if any(ord(c) < 0x20 or ord(c) > 0x7e for c in out):
        raise ValueError("control or non-ASCII character")
    return out


def printable_q(text):
    return text[:80]


def check_head(method, target, has_body, config, owned, api_range=None):
    """The decision on a request's method, target and whether it has a body. For a create that
    passes, the body must still go through `check_create` (action "create"). api_range: the
    engine's (MinAPIVersion, ApiVersion) as tuples; a versioned path outside it is refused (the
    engine would answer it with an ordinary error and keep the connection)."""
    try:
        path, query, version = split_target(target)
    except ValueError as e:
        return deny("malformed", str(e), status=400)
    if version is not None:
        low = max(MIN_API_VERSION, api_range[0]) if api_range else MIN_API_VERSION
        if version < low or (api_range and version > api_range[1]):
            high = f"{'.'.join(map(str, api_range[1]))}" if api_range else "the engine's"
            return deny("api-version", f"API version {'.'.join(map(str, version))} is outside "
                        f"{'.'.join(map(str, low))}..{high}")
    for m, regex, rule, kind in ROUTES:
        match = regex.match(path)
        if match is None or m != method:
            continue
        bad = check_query(rule, query)
        if bad:
            return deny("query", f"{method} {generic(path)}: {bad}")
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


def check_request(method, target, body, config, owned, image_user=None, api_range=None):
    """The whole decision on one request. body: bytes (None or b"" when there is none); owned:
    supports `container_id in owned`; image_user: optional callable image -> the User the image
    runs as ("" = root by default; None = image not found), for PROXY_DENY_ROOT."""
    decision = check_head(method, target, bool(body), config, owned, api_range)
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
# The create body: docker_proxy_create.py


def check_create(body, config, image_user=None):
    """The decision on a POST /containers/create body (bytes); when allowed, `Decision.body` is
    what to send the engine (the proxy's own serialisation of the checked fields)."""
    try:
        forward, image = create.build_create(body, config, image_user)
    except create.BodyError as e:
        return deny("malformed-body", str(e), status=400)
    except create.Refused as e:
        return deny(e.rule, e.reason)
    return allow("containers.create", "allowed", action="create", image=image, body=forward)
