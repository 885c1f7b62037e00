"""Host paths a registry entry may mount (`mounts:`): parsed, normalised and checked against the
admin's allow-list (DOWNLINK_ALLOWED_MOUNTS). Pure Python: `make check` and the DAG factory share
it, and docker-proxy repeats the same refusals on its side (images/docker-proxy).

Refused whatever the allow-list says: `/`, the Docker socket, the host's configuration and
kernel interfaces, the engine's own storage, anything under them, and any folder that holds one
of them (mounting /var would hand out /var/lib/docker and /var/run/docker.sock).
"""
import dataclasses
import posixpath

NEVER = ("/etc", "/var/lib/docker", "/proc", "/sys", "/dev", "/var/run/docker.sock", "/run/docker.sock")
# Where a host mount may not land in the step container: Downlink's own mounts and the kernel's.
RESERVED_TARGETS = ("/data", "/source", "/run/secrets", "/proc", "/sys", "/dev")


@dataclasses.dataclass(frozen=True)
class HostMount:
    host: str
    target: str
    rw: bool = False


def clean_path(text, what="path"):
    """An absolute path, normalised; ValueError for relative paths and `..` (refused, not resolved:
    `..` in a mount is a mistake or an escape, never what a script meant)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} must be an absolute path")
    text = text.strip()
    if not text.startswith("/"):
        raise ValueError(f"{what} {text!r} is not an absolute path")
    if ".." in text.split("/"):
        raise ValueError(f"{what} {text!r} contains '..'")
    path = posixpath.normpath(text)
    return "/" + path.lstrip("/")  # normpath keeps a leading '//'


def under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def never_mountable(path):
    """Why `path` may never be a bind source ('' when it may)."""
    if path == "/":
        return "the host's root"
    for bad in NEVER:
        if under(path, bad):
            return f"{bad} (or under it)"
        if under(bad, path):
            return f"a folder holding {bad}"
    return ""


def parse_allow_list(text):
    """DOWNLINK_ALLOWED_MOUNTS: absolute paths separated by ',' or ':' (empty: no host mounts)."""
    items = [p for p in str(text or "").replace(",", ":").split(":") if p.strip()]
    return tuple(clean_path(p, "DOWNLINK_ALLOWED_MOUNTS entry") for p in items)


def parse_mount(item, allowed):
    """One `mounts:` item (a path string: read-only at the same path; or {host, target, rw}) as
    a HostMount; ValueError naming what is wrong."""
    if isinstance(item, str):
        item = {"host": item}
    if not isinstance(item, dict):
        raise ValueError(f"{item!r}: give a path or a mapping with host, target, rw")
    unknown = set(item) - {"host", "target", "rw"}
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (host, target, rw)")
    host = clean_path(item.get("host"), "host")
    target = clean_path(item.get("target") or host, "target")
    rw = item.get("rw", False)
    if not isinstance(rw, bool):
        raise ValueError(f"rw: {rw!r} is not true or false")
    reason = never_mountable(host)
    if reason:
        raise ValueError(f"{host} is never mounted: {reason}")
    if not any(under(host, root) for root in allowed):
        raise ValueError(f"{host} is not under DOWNLINK_ALLOWED_MOUNTS ({', '.join(allowed) or 'empty: no host mounts allowed'})")
    if target == "/" or any(under(target, t) or under(t, target) for t in RESERVED_TARGETS):
        raise ValueError(f"target {target} would cover the step's own mounts or system folders")
    return HostMount(host=host, target=target, rw=rw)
