"""Merging an import into a registry file: append text, keep everything already there; check it
with the registry and write it atomically."""
import os
import re
import tempfile

import yaml


class MergeError(Exception):
    """--into could not merge into the registry; nothing was written."""


TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*|\"[^\"]*\"|'[^']*')\s*:(?:\s|$)")


def _sections(lines):
    """{top-level key: (index of its line, index after its block)}."""
    keys = []
    for i, line in enumerate(lines):
        if line.startswith(("---", "...")):
            if i and any(x.strip() and not x.lstrip().startswith("#") for x in lines[:i]):
                raise MergeError("holds more than one YAML document")
            continue
        if not line.strip() or line[0] in " \t#-":
            continue
        m = TOP_KEY.match(line)
        if not m:
            raise MergeError(f"line {i + 1}: unexpected top-level text {line.strip()!r}")
        keys.append((m.group(1).strip("\"'"), i))
    out = {}
    for n, (key, i) in enumerate(keys):
        end = keys[n + 1][1] if n + 1 < len(keys) else len(lines)
        out[key] = (i, end)
    return out


def _insert(lines, key, block, item_prefix):
    """Lines with `block` (a function of the indent found) appended to the top-level `key`'s block."""
    sections = _sections(lines)
    if key not in sections:
        body = block("  ")
        tail = [] if not lines or not lines[-1].strip() else [""]
        return lines + tail + [f"{key}:"] + body
    start, end = sections[key]
    head = lines[start]
    value = re.sub(r"\s+#.*$", "", head.split(":", 1)[1]).strip()
    if value in ("{}", "[]", "null", "~"):
        head = head.replace(value, "", 1).rstrip()
        lines = lines[:start] + [head] + lines[start + 1:]
    elif value:
        raise MergeError(f"line {start + 1}: {key}: is written inline ({value}); write it as a block to merge into it")
    last = start
    indent = None
    for i in range(start + 1, end):
        line = lines[i]
        if line.strip() and (line[0] in " \t" or line.startswith("-")):
            last = i
            if indent is None and not line.lstrip().startswith("#"):
                indent = re.match(r"^[ ]*", line).group(0)
                if item_prefix and not line.lstrip().startswith("-"):
                    raise MergeError(f"line {i + 1}: {key}: expected a list item (- name: ...)")
    body = block("  " if indent is None else indent)
    before = [""] if last > start else []
    after = [""] if last + 1 < len(lines) and lines[last + 1][:1] not in ("", " ", "\t", "#") else []
    return lines[:last + 1] + before + body + after + lines[last + 1:]


def merge_text(text, result, path="registry.yaml"):
    """The registry's text with the result's chains and scripts appended (text and comments kept)."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise MergeError(f"is not valid YAML: {exc}") from exc
    data = data if data is not None else {}
    if not isinstance(data, dict):
        raise MergeError("is not a registry (a mapping with chains: and scripts:)")
    lines = text.splitlines()
    header = result.header_lines()

    def chains_block(indent):
        return [f"{indent}{c}" for c in header[:1]] + result.chain_lines(indent)

    def scripts_block(indent):
        return [f"{indent}{c}" for c in header] + result.script_lines(indent)

    if result.chains:
        lines = _insert(lines, "chains", chains_block, item_prefix=False)
    if result.entries:
        lines = _insert(lines, "scripts", scripts_block, item_prefix=True)
    merged = "\n".join(lines) + "\n"

    expected = dict(data)
    expected["chains"] = {**(data.get("chains") or {}), **result.chains_data()}
    expected["scripts"] = list(data.get("scripts") or []) + result.scripts_data()
    try:
        got = yaml.safe_load(merged)
    except yaml.YAMLError as exc:
        raise MergeError(f"appending made invalid YAML ({exc}); paste the output of import-crontab "
                         "without --into by hand") from exc
    if not result.chains and "chains" not in data:
        expected.pop("chains")
    if not result.entries and "scripts" not in data:
        expected.pop("scripts")
    if got != expected:
        raise MergeError("cannot append without changing what is already there (unusual layout); "
                         "paste the output of import-crontab without --into by hand")
    return merged


def registry_names(data):
    """(script names, chain names) already used in a registry's data."""
    scripts = [s for s in (data.get("scripts") or []) if isinstance(s, dict)]
    names = {str(s.get("name")) for s in scripts}
    chains = set(map(str, (data.get("chains") or {}).keys())) | {str(s.get("name")) for s in scripts if "schedule" in s}
    return names, chains


def validate(data, source):
    """The registry's problems with this data ([] when the registry module is not there)."""
    try:
        from downlink_airflow.registry import RegistryError, parse_registry
    except ImportError:
        return []
    try:
        return list(parse_registry(data, source).problems)
    except RegistryError as exc:
        return list(exc.problems)


def write_atomic(path, text):
    """Replace `path` with `text` in one step (a temporary file in the same folder, then rename)."""
    path = os.path.realpath(path)  # a symlinked registry stays a symlink
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
