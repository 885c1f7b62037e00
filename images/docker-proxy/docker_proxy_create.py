"""docker-proxy: the body of POST /containers/create, checked against an allow-list and rebuilt.

`build_create(body, config, image_user)` returns the JSON bytes to send to the engine instead of
the client's, or raises `Refused` / `BodyError`. The forwarded body holds only the fields listed
below, spelled the way the engine spells them, with values that were checked; the client's bytes
never reach the engine.

How the engine would read the client's body, and why that does not matter any more:
  - Go's encoding/json matches keys to struct fields case-insensitively (with Unicode folding:
    "ſ" matches "s", "K" (Kelvin) matches "k"), and decodes a repeated key INTO what the first
    one filled, so both objects' fields apply. Here, any key repeated in one object, compared
    after Unicode case folding, refuses the body; non-ASCII keys are refused; field names match
    case-insensitively (one spelling per object, since repeats are refused).
  - The engine reads HostConfig fields from the top level when "HostConfig" is absent: the
    forwarded body always has a HostConfig, and the top level only takes Config fields.

Every other field (top level, HostConfig, a mount, LogConfig ...) is refused by name, unless its
value is empty (null, false, 0, "", [] or {}): such a field is dropped, so the engine applies its
own default (this is what docker-py sends for settings it was not given, e.g. "PortBindings": {}).
"""
import json
import posixpath
import re

# Docker's JSON field names, per struct. The check is by folded name; the output uses these.


class BodyError(ValueError):
    """Not a body the proxy can read: 400."""


class Refused(Exception):
    """A readable body that asks for something not allowed: 403."""

    def __init__(self, rule, reason):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Reading the body: no repeated keys at any level, ASCII keys only, no lone surrogates.

MAX_DEPTH = 32


class Obj(dict):
    """A JSON object whose keys were checked (no repeats after case folding, ASCII only)."""


def _pairs(pairs):
    seen = {}
    for key, _ in pairs:
        if not key.isascii():
            raise Refused("key", f"non-ASCII key {key!r} is not accepted (the engine would fold its case, "
                          "e.g. 'ſ' to 's', onto another field)")
        folded = key.casefold()
        if folded in seen:
            raise Refused("duplicate-key", f"key {key!r} repeats {seen[folded]!r} in one object: "
                          "the engine would merge both, so repeated keys are refused (compared ignoring case)")
        seen[folded] = key
    return Obj(pairs)


def _no_surrogates(value, depth=0):
    if depth > MAX_DEPTH:
        raise BodyError(f"the body is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise BodyError("a string holds a lone surrogate escape (not valid Unicode)")
    elif isinstance(value, dict):
        for v in value.values():
            _no_surrogates(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _no_surrogates(v, depth + 1)


def parse_body(body):
    if not body:
        raise BodyError("the create request has no body")
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError:
        raise BodyError("the body is not UTF-8") from None

    def no_constants(name):
        raise BodyError(f"{name} is not JSON")
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_constant=no_constants)
    except (BodyError, Refused):
        raise
    except ValueError as e:
        raise BodyError(f"the body is not JSON: {e}") from None
    except RecursionError:
        raise BodyError("the body is nested too deeply") from None
    if not isinstance(data, Obj):
        raise BodyError("the body must be a JSON object")
    _no_surrogates(data)
    return data


# --------------------------------------------------------------------------------------------
# Typed readers (value, where) -> a clean Python value, or BodyError


def empty(value):
    """null, false, 0, "", [] or {}: what the engine takes as "not set"."""
    return value is None or value is False or value == 0 and not isinstance(value, bool) \
        or value == "" or value == [] or value == {}


def _str(v, where, pattern=None, max_len=1 << 20):
    if v is None:
        return ""
    if not isinstance(v, str):
        raise BodyError(f"{where} must be a string")
    if len(v) > max_len:
        raise BodyError(f"{where} is longer than {max_len} characters")
    if "\0" in v:
        raise BodyError(f"{where} holds a NUL character")
    if pattern is not None and v and not re.fullmatch(pattern, v):
        raise Refused("value", f"{where}={v[:80]!r} is not accepted")
    return v


def _bool(v, where):
    if v is None:
        return False
    if not isinstance(v, bool):
        raise BodyError(f"{where} must be true or false")
    return v


def _int(v, where, lo=0, hi=2 ** 63 - 1):
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        raise BodyError(f"{where} must be an integer")
    if not lo <= v <= hi:
        raise Refused("value", f"{where}={v} is out of range [{lo}, {hi}]")
    return v


def _strings(v, where, pattern=None, max_items=4096):
    if v is None:
        return []
    if not isinstance(v, list):
        raise BodyError(f"{where} must be a list of strings")
    if len(v) > max_items:
        raise BodyError(f"{where} has more than {max_items} items")
    return [_str(x, f"{where}[{i}]", pattern) if isinstance(x, str) else _fail(f"{where}[{i}] must be a string")
            for i, x in enumerate(v)]


def _fail(message):
    raise BodyError(message)


def _str_map(v, where, key_pattern=None, max_items=1024):
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise BodyError(f"{where} must be an object of strings")
    if len(v) > max_items:
        raise BodyError(f"{where} has more than {max_items} entries")
    out = {}
    for k, x in v.items():
        if key_pattern is not None and not re.fullmatch(key_pattern, k):
            raise Refused("value", f"{where} key {k[:80]!r} is not accepted")
        out[k] = _str(x, f"{where}[{k!r}]")
    return out


def _cmd(v, where):
    """strslice.StrSlice: a string or a list of strings; null: the image's."""
    if v is None:
        return None
    if isinstance(v, str):
        return [_str(v, where)]
    return _strings(v, where)


def _obj(v, where):
    if v is None:
        return None
    if not isinstance(v, dict):
        raise BodyError(f"{where} must be an object")
    return v


# --------------------------------------------------------------------------------------------
# The allow-list: struct -> {field: reader(value, where, config, ctx) -> value to forward}
# (a reader returning None drops the field).

def read_struct(obj, where, fields, config, ctx):
    """The allowed fields of `obj` (a checked JSON object), read by their readers, keyed by the
    engine's spelling. Unknown fields: dropped when empty, else refused by name."""
    by_fold = {name.casefold(): name for name in fields}
    out = {}
    for key, value in obj.items():
        name = by_fold.get(key.casefold())
        if name is not None and fields[name] is None:
            continue  # read by the caller
        if name is None:
            # dropped, so the engine applies its default; but an explicit [] of these is not
            # their default (it unmasks /proc paths, empties the capability set): refused
            if empty(value) and (value is None or key.casefold() not in NULL_ONLY):
                continue
            rule = KNOWN_DANGERS.get(key.casefold(), "not-allowed")
            raise Refused(rule, f"{where}.{key} is not allowed (docker-proxy forwards only the "
                          f"fields it knows to be safe; here: {', '.join(sorted(fields))})")
        got = fields[name](value, f"{where}.{name}", config, ctx)
        if got is not None:
            out[name] = got
    return out


# Rule names for the refusals an operator is most likely to meet (else "not-allowed").
KNOWN_DANGERS = {k.casefold(): rule for rule, keys in {
    "privileged": ["Privileged"], "binds": ["Binds"], "volumes-from": ["VolumesFrom"],
    "cap-add": ["CapAdd", "Capabilities"], "devices": ["Devices", "DeviceCgroupRules", "DeviceRequests"],
    "namespaces": ["PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode", "Cgroup"],
    "ports": ["PortBindings", "PublishAllPorts", "ExposedPorts"], "sysctls": ["Sysctls"],
    "systempaths": ["MaskedPaths", "ReadonlyPaths"], "runtime": ["Runtime"], "links": ["Links"],
    "cgroup-parent": ["CgroupParent"], "volume-driver": ["VolumeDriver"], "volume": ["DriverConfig"],
    "oom-kill-disable": ["OomKillDisable"], "security-opt": ["SecurityOpt"],
}.items() for k in keys}

NULL_ONLY = {"maskedpaths", "readonlypaths", "capabilities"}

HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62})"
ENV = r"[A-Za-z_][A-Za-z0-9_.-]*(=[\s\S]*)?"
LABEL_KEY = r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,254}"
SIGNAL = r"(SIG)?[A-Z0-9+-]{1,16}|[0-9]{1,2}"
USER = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?"
ABS_PATH = r"/[^\0]*"
CPUSET = r"[0-9,-]{1,64}"
TMPFS_OPTIONS = r"[a-z0-9=,]{0,200}"


def f_image(v, where, config, ctx):
    image = _str(v, where)
    if not image:
        raise Refused("image", "the container has no Image")
    if "*" not in config.allowed_images and not any(image.startswith(p) for p in config.allowed_images):
        raise Refused("image", f"image {image!r} does not start with an allowed prefix "
                      f"(PROXY_ALLOWED_IMAGES={','.join(config.allowed_images)})")
    ctx["image"] = image
    return image


def f_user(v, where, config, ctx):
    user = _str(v, where, USER)
    ctx["user"] = user
    return user or None


def f_abs(v, where, config, ctx):
    path = _str(v, where)
    if path and not path.startswith("/"):
        raise Refused("value", f"{where}={path[:80]!r} must be an absolute path")
    return path or None


def f_bool(v, where, config, ctx):
    return _bool(v, where)


def f_mem(v, where, config, ctx):
    return _int(v, where, 0) or None


def f_pos(v, where, config, ctx):
    return _int(v, where, 0) or None


def f_swap(v, where, config, ctx):
    # -1: unlimited swap within the memory limit's cgroup; else at least the memory limit
    return _int(v, where, -1) or None


TOP_FIELDS = {
    "Image": f_image,
    "Cmd": lambda v, w, c, x: _cmd(v, w),
    "Entrypoint": lambda v, w, c, x: _cmd(v, w),
    "Env": lambda v, w, c, x: _strings(v, w, ENV) or None,
    "User": f_user,
    "WorkingDir": f_abs,
    "Labels": lambda v, w, c, x: _str_map(v, w, LABEL_KEY) or None,
    "Hostname": lambda v, w, c, x: _str(v, w, HOSTNAME) or None,
    "Tty": f_bool, "OpenStdin": f_bool, "StdinOnce": f_bool,
    "AttachStdin": f_bool, "AttachStdout": f_bool, "AttachStderr": f_bool,
    "StopSignal": lambda v, w, c, x: _str(v, w, SIGNAL) or None,
    "StopTimeout": lambda v, w, c, x: None if v is None else _int(v, w, 0, 86400),
    "HostConfig": None,        # read separately (required)
    "NetworkingConfig": None,  # read separately
}


def f_network(v, where, config, ctx):
    name = _str(v, where)
    check_network(name or "default", where, config)
    ctx["network"] = name
    return name or None


def f_security_opt(v, where, config, ctx):
    opts = _strings(v, where)
    for opt in opts:
        if opt not in SAFE_SECURITY_OPTS:
            raise Refused("security-opt", f"{where} {opt[:60]!r} is not allowed (only no-new-privileges)")
    return opts or None


def f_cap_drop(v, where, config, ctx):
    return _strings(v, where, r"[A-Za-z_]{1,40}") or None


def f_log_config(v, where, config, ctx):
    obj = _obj(v, where)
    if obj is None:
        return None
    out = read_struct(obj, where, {
        "Type": lambda v, w, c, x: _str(v, w) or None,
        "Config": lambda v, w, c, x: _str_map(v, w) or None,
    }, config, ctx)
    driver = out.get("Type", "")
    if driver not in LOG_DRIVERS:
        raise Refused("log-driver", f"{where}.Type={driver!r} is not allowed (json-file, local, or the engine's default)")
    for key in out.get("Config", {}):
        if key not in LOG_OPTIONS:
            raise Refused("log-driver", f"{where}.Config[{key!r}] is not allowed ({', '.join(sorted(LOG_OPTIONS))})")
    return out or None


def f_tmpfs(v, where, config, ctx):
    out = _str_map(v, where)
    for path, options in out.items():
        if not path.startswith("/") or ":" in path:
            raise Refused("value", f"{where} path {path[:80]!r} must be an absolute path")
        if not re.fullmatch(TMPFS_OPTIONS, options):
            raise Refused("value", f"{where}[{path!r}] options {options[:80]!r} are not accepted")
    return out or None


def f_mounts(v, where, config, ctx):
    if v is None:
        return None
    if not isinstance(v, list):
        raise BodyError(f"{where} must be a list")
    return [read_mount(m, f"{where}[{i}]", config) for i, m in enumerate(v)] or None


def f_ipc(v, where, config, ctx):
    mode = _str(v, where)
    if mode not in ("", "private", "shareable", "none"):
        raise Refused("namespaces", f"{where}={mode!r} is not allowed")
    return mode or None


def f_restart(v, where, config, ctx):
    obj = _obj(v, where)
    if obj is None:
        return None
    out = read_struct(obj, where, {
        "Name": lambda v, w, c, x: _str(v, w) or None,
        "MaximumRetryCount": lambda v, w, c, x: _int(v, w) or None,
    }, config, ctx)
    if out.get("Name", "no") != "no" or out.get("MaximumRetryCount"):
        raise Refused("not-allowed", f"{where}: restart policies are not allowed")
    return None


HOST_FIELDS = {
    "NetworkMode": f_network,
    "Mounts": f_mounts,
    "Tmpfs": f_tmpfs,
    "Memory": f_mem, "MemoryReservation": f_mem, "MemorySwap": f_swap,
    "PidsLimit": lambda v, w, c, x: None if v is None else _int(v, w, -1),
    "CpuShares": f_pos, "NanoCpus": f_pos, "CpuPeriod": f_pos, "CpuQuota": f_pos,
    "CpusetCpus": lambda v, w, c, x: _str(v, w, CPUSET) or None,
    "ShmSize": f_pos,
    "Init": lambda v, w, c, x: None if v is None else _bool(v, w),
    "CapDrop": f_cap_drop,
    "SecurityOpt": f_security_opt,
    "LogConfig": f_log_config,
    "AutoRemove": f_bool,
    "ReadonlyRootfs": f_bool,
    "IpcMode": f_ipc,
    "RestartPolicy": f_restart,
}

MOUNT_FIELDS = ("Type", "Source", "Target", "ReadOnly", "VolumeOptions", "BindOptions", "TmpfsOptions")
SAFE_SECURITY_OPTS = {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}
LOG_DRIVERS = {"", "json-file", "local"}
LOG_OPTIONS = {"max-size", "max-file", "compress", "mode", "max-buffer-size"}


# Never a bind source, whatever the allow-lists say: the host's root, the engine's socket and
# storage, the host's configuration and kernel interfaces, anything under them, and any folder
# holding one of them (/var holds /var/lib/docker). The same list as the registry's check
# (plugins/downlink_airflow/host_mounts.py), repeated here: the proxy trusts no client.
NEVER_BIND = ("/etc", "/var/lib/docker", "/proc", "/sys", "/dev", "/var/run/docker.sock", "/run/docker.sock")


def _under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def never_bindable(path):
    """Why `path` (normalised, absolute) may never be bind-mounted ('' when it may)."""
    if path == "/":
        return "the host's root"
    for bad in NEVER_BIND:
        if _under(path, bad) or _under(bad, path):
            return f"it is, is under or holds {bad}"
    return ""


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
            raise Refused("network", f"{where}={name!r} is not in PROXY_ALLOWED_NETWORKS "
                          f"({', '.join(config.allowed_networks)})")
    elif re.fullmatch(r"[0-9a-f]+", name):
        raise Refused("network", f"{where}={name!r}: network IDs are not accepted, use the network's name")


def read_mount(m, where, config):
    m = _obj(m, where)
    if m is None:
        raise BodyError(f"{where} must be an object")
    fields = {n: (lambda v, w, c, x: v) for n in MOUNT_FIELDS}  # typed below, per mount type
    raw = read_struct(m, where, fields, config, {})
    mtype = _str(raw.get("Type"), f"{where}.Type")
    source = _str(raw.get("Source"), f"{where}.Source")
    target = _str(raw.get("Target"), f"{where}.Target")
    read_only = _bool(raw.get("ReadOnly"), f"{where}.ReadOnly")
    if not target.startswith("/") or ".." in target.split("/"):
        raise Refused("mount", f"{where}.Target {target[:80]!r} must be an absolute path without '..'")
    out = {"Type": mtype, "Source": source, "Target": target, "ReadOnly": read_only}
    others = {k: raw[k] for k in ("VolumeOptions", "BindOptions", "TmpfsOptions") if k in raw}
    if mtype == "volume":
        if not source:
            raise Refused("volume", f"{where}: anonymous volumes are not allowed (name one of PROXY_ALLOWED_VOLUMES)")
        rules = [r for r in config.allowed_volumes if r.matches(source)]
        if not rules:
            raise Refused("volume", f"{where}: volume {source!r} is not in PROXY_ALLOWED_VOLUMES")
        if all(r.read_only for r in rules) and not read_only:
            raise Refused("volume", f"{where}: volume {source!r} may only be mounted read-only")
        opts = _obj(others.pop("VolumeOptions", None), f"{where}.VolumeOptions")
        if opts is not None:
            vo = read_struct(opts, f"{where}.VolumeOptions",
                             {"NoCopy": lambda v, w, c, x: _bool(v, w) or None}, config, {})
            if vo:
                out["VolumeOptions"] = vo
    elif mtype == "bind":
        path = posixpath.normpath(source) if source else ""
        if not source.startswith("/") or ".." in source.split("/"):
            raise Refused("bind", f"{where}: bind mount of {source!r}: the source must be an absolute path")
        why = never_bindable(path)
        if why:
            raise Refused("bind", f"{where}: bind mount of {source} is never allowed: {why}")
        writable = any(_under(path, p) for p in config.allowed_rw_bind_sources)
        if not writable and not any(_under(path, p) for p in config.allowed_bind_sources):
            raise Refused("bind", f"{where}: bind mount of {source} is not under PROXY_ALLOWED_BIND_SOURCES "
                          f"({', '.join(config.allowed_bind_sources) or 'none allowed'}) nor "
                          f"PROXY_ALLOWED_RW_BIND_SOURCES ({', '.join(config.allowed_rw_bind_sources) or 'none allowed'})")
        if not read_only and not writable:
            raise Refused("bind", f"{where}: bind mount of {source} must be read-only "
                          "(it is not under PROXY_ALLOWED_RW_BIND_SOURCES)")
        opts = _obj(others.pop("BindOptions", None), f"{where}.BindOptions")
        if opts is not None:
            bo = read_struct(opts, f"{where}.BindOptions",
                             {"Propagation": lambda v, w, c, x: _str(v, w) or None}, config, {})
            if bo.get("Propagation", "rprivate") not in ("private", "rprivate"):
                raise Refused("bind", f"{where}: bind propagation {bo['Propagation']!r} is not allowed")
            if bo:
                out["BindOptions"] = bo
    elif mtype == "tmpfs":
        if source:
            raise Refused("mount", f"{where}: a tmpfs mount takes no Source")
        opts = _obj(others.pop("TmpfsOptions", None), f"{where}.TmpfsOptions")
        if opts is not None:
            to = read_struct(opts, f"{where}.TmpfsOptions", {
                "SizeBytes": lambda v, w, c, x: _int(v, w) or None,
                "Mode": lambda v, w, c, x: _int(v, w, 0, 0o7777) or None,
            }, config, {})
            if to:
                out["TmpfsOptions"] = to
    else:
        raise Refused("mount-type", f"{where}: mount type {mtype!r} is not allowed (volume, tmpfs, read-only bind)")
    for name, value in others.items():  # options of another mount type
        if not empty(value):
            raise Refused("mount", f"{where}.{name} does not belong to a {mtype} mount")
    return out


def read_networking(v, where, config):
    obj = _obj(v, where)
    if obj is None:
        return None
    out = read_struct(obj, where, {"EndpointsConfig": lambda v, w, c, x: _obj(v, w)}, config, {})
    endpoints = {}
    for name, settings in (out.get("EndpointsConfig") or {}).items():  # a map: names are exact
        check_network(name, f"{where}.EndpointsConfig", config)
        settings = _obj(settings, f"{where}.EndpointsConfig[{name!r}]") or {}
        endpoints[name] = read_struct(settings, f"{where}.EndpointsConfig[{name!r}]", {
            "Aliases": lambda v, w, c, x: _strings(v, w, HOSTNAME) or None}, config, {})
    return {"EndpointsConfig": endpoints} if endpoints else None


def is_root_user(user):
    """'root', '0', 'root:x', '0:0', '000' -> True (the user part; a group 0 is not root)."""
    name = user.split(":", 1)[0].strip()
    return name == "root" or (name.isdigit() and int(name) == 0)


def build_create(body, config, image_user=None):
    """(the JSON bytes to forward, the image) for an allowed create body; raises BodyError or
    Refused. image_user: callable image -> the User the image runs as ("" = root; None = no
    such image), for the root check."""
    top = parse_body(body)
    ctx = {}
    out = read_struct(top, "body", TOP_FIELDS, config, ctx)
    by_fold = {k.casefold(): k for k in top}
    if "image" not in ctx:
        raise Refused("image", "the container has no Image")
    hc_key = by_fold.get("hostconfig")
    hc = _obj(top[hc_key], "HostConfig") if hc_key else None
    if hc is None:
        raise Refused("limits", "no HostConfig: every step needs HostConfig.Memory and HostConfig.PidsLimit")
    host = read_struct(hc, "HostConfig", HOST_FIELDS, config, ctx)
    if "network" not in ctx:
        check_network("default", "HostConfig.NetworkMode (empty: the engine's default)", config)
    if not host.get("Memory"):
        raise Refused("limits", "HostConfig.Memory is required: every step needs a memory limit")
    if not host.get("PidsLimit") or host["PidsLimit"] <= 0:
        raise Refused("limits", "HostConfig.PidsLimit is required: every step needs a limit on its processes")
    out["HostConfig"] = host
    nc_key = by_fold.get("networkingconfig")
    if nc_key:
        nc = read_networking(top[nc_key], "NetworkingConfig", config)
        if nc:
            out["NetworkingConfig"] = nc
    check_user(ctx["image"], ctx.get("user", ""), config, image_user)
    return json.dumps(out, separators=(",", ":")).encode(), ctx["image"]


def check_user(image, user, config, image_user):
    if not config.deny_root:
        return
    if user:
        if is_root_user(user):
            raise Refused("root", f"User {user!r}: running as root is not allowed (PROXY_DENY_ROOT)")
        return
    if image_user is None:
        raise Refused("root", f"no User given and the user of image {image!r} cannot be looked up (PROXY_DENY_ROOT)")
    try:
        default = image_user(image)
    except Exception as e:  # the engine could not be asked: refuse rather than guess
        raise Refused("root", f"no User given and the user of image {image!r} "
                      f"could not be looked up ({e}) (PROXY_DENY_ROOT)") from None
    if default is None:
        return  # no such image: the engine will answer 404
    if default == "" or is_root_user(default):
        raise Refused("root", f"no User given and image {image!r} runs as "
                      f"{default or 'root'}: running as root is not allowed (PROXY_DENY_ROOT)")
