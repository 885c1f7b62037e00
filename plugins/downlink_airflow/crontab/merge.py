"""Merging an import into a registry file: the registry loaded with ruamel.yaml's round trip, the
chains and scripts appended to it, dumped back with its comments, key order and layout kept; checked
with the registry and written atomically."""
import difflib
import io
import itertools
import os
import re
import tempfile

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.tokens import CommentToken


class MergeError(Exception):
    """--into could not merge into the registry; nothing was written."""


def _indents(lines):
    """(mapping indent, offset of a sequence's dash) the file uses; the registry's 2 and 2 if none."""
    mapping = offset = None
    for prev, line in zip(lines, lines[1:]):
        if not prev or prev[0] in " \t#-" or not prev.rstrip().endswith(":"):
            continue
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#") or (line == stripped and not stripped.startswith("- ")):
            continue
        width = len(line) - len(stripped)
        if stripped.startswith("- "):
            offset = width if offset is None else offset
        elif mapping is None:
            mapping = width
    return (2 if mapping is None else mapping), (2 if offset is None else offset)


class _Representer(RoundTripRepresenter):
    """ruamel's round trip, but a null is written `null` (the registry's spelling; ruamel's own is
    an empty value, and it does not keep how the file wrote it: `~` or nothing is refused below)."""


_Representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))


def _yaml(lines):
    """ruamel.yaml in round-trip mode (comments, key order, quotes and flow or block style kept),
    indenting as the file does."""
    rt = YAML()
    rt.Representer = _Representer
    rt.preserve_quotes = True
    rt.width = 2 ** 16  # never folds a long line
    mapping, offset = _indents(lines)
    rt.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return rt


def _block(node):
    """Whether `node` is a non-empty collection written as a block."""
    return isinstance(node, (CommentedMap, CommentedSeq)) and len(node) > 0 and not node.fa.flow_style()


def _last_leaf(node):
    """(the collection, key or index) of the last value in `node` that is a scalar or written inline,
    where ruamel keeps the comment and lines after it; None when `node` is empty."""
    while _block(node):
        key = next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1
        if not _block(node[key]):
            return node, key
        node = node[key]
    return None


def _comment_after(leaf, value=None):
    """The text after `leaf`'s value, up to the next node: its end-of-line comment ('\\n' for none) and
    the lines that follow. With `value`: set it."""
    node, key = leaf
    slot = 2 if isinstance(node, CommentedMap) else 0
    entry = node.ca.items.get(key)
    if value is None:
        token = entry[slot] if entry and entry[slot] is not None else None
        return token.value if token is not None else "\n"
    if entry is None:
        entry = node.ca.items[key] = [None, None, None, None] if slot == 2 else [None, None]
    if entry[slot] is None:
        entry[slot] = CommentToken(value, CommentMark(0), None)  # only made for lines after a value
    else:
        entry[slot].value = value
    return value


def _append(doc, key, rt, block_lines, header, lines):
    """The block's entries (the text of a `key:` block, parsed) appended to doc[key]; the lines that
    followed the old entries follow the new ones. The index of the line that may change (an empty
    `key: {}` or `key: null` becomes `key:`), else None."""
    target = doc.get(key)
    lineno = doc.lc.key(key)[0] if key in doc else None
    if key not in doc or target is None or (isinstance(target, (CommentedMap, CommentedSeq)) and not len(target)):
        fragment = rt.load("\n".join([f"{key}:"] + header + block_lines) + "\n")
        last = _last_leaf(doc)
        if key not in doc and last is not None:  # a new top-level key at the end, after a blank line
            tail = _comment_after(last)
            _comment_after(last, tail if tail.endswith("\n\n") else tail + "\n")
        doc[key] = fragment[key]
        if key in fragment.ca.items:
            doc.ca.items[key] = fragment.ca.items[key]
        return lineno if lineno is not None and "#" not in lines[lineno] else None  # its comment would go: refused
    want = CommentedSeq if key == "scripts" else CommentedMap
    if not isinstance(target, (CommentedMap, CommentedSeq)) or target.fa.flow_style():
        value = re.sub(r"\s+#.*$", "", lines[lineno].split(":", 1)[1]).strip()
        raise MergeError(f"line {lineno + 1}: {key}: is written inline ({value}); write it as a block to merge into it")
    if not isinstance(target, want):
        what = "a list item (- name: ...)" if key == "scripts" else "name: entries"
        raise MergeError(f"line {lineno + 1}: {key}: expected {what}")
    # The lines before the first new entry (the header, the entry's own comments) follow the last
    # old value, after a blank line; ruamel keeps them there.
    lead = header + list(itertools.takewhile(lambda line: line.lstrip().startswith("#"), block_lines))
    fragment = rt.load("\n".join([f"{key}:"] + block_lines) + "\n")[key]
    old_last = _last_leaf(target)
    eol, _, rest = _comment_after(old_last).partition("\n")
    _comment_after(old_last, eol + "\n\n" + "".join(f"{line}\n" for line in lead))
    if isinstance(target, CommentedSeq):
        target.extend(fragment)
        for i, _ in enumerate(fragment):
            if i in fragment.ca.items:
                target.ca.items[len(target) - len(fragment) + i] = fragment.ca.items[i]
    else:
        for name in fragment:
            target[name] = fragment[name]
            if name in fragment.ca.items:
                target.ca.items[name] = fragment.ca.items[name]
    if rest:
        new_last = _last_leaf(target)
        new_eol = _comment_after(new_last).partition("\n")[0]
        _comment_after(new_last, new_eol + "\n" + rest)
    return None


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
    rt = _yaml(lines)
    try:
        doc = rt.load(text)
    except RuamelError as exc:
        raise MergeError(f"is not valid YAML: {exc}") from exc
    prefix = ""
    if doc is None:  # nothing but comments (or nothing), which ruamel drops: they stay on top
        doc = CommentedMap()
        prefix = "".join(f"{line}\n" for line in lines) + ("\n" if lines and lines[-1].strip() else "")
    if not isinstance(doc, CommentedMap):
        raise MergeError("is not a registry (a mapping with chains: and scripts:)")
    header = result.header_lines()
    mapping, offset = _indents(lines)
    changed = set()  # lines that had to change: `chains: {}` -> `chains:`
    if result.chains:
        changed.add(_append(doc, "chains", rt, result.chain_lines(" " * mapping), [" " * mapping + c for c in header[:1]], lines))
    if result.entries:
        changed.add(_append(doc, "scripts", rt, result.script_lines(" " * offset), [" " * offset + c for c in header], lines))
    out = io.StringIO()
    rt.dump(doc, out)
    merged = prefix + out.getvalue()

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
    # Every line already there stays, in order, but an empty `chains: {}` or `scripts: null` (ruamel
    # dumps the whole document: a layout it writes differently is refused, not rewritten).
    ops = difflib.SequenceMatcher(None, lines, merged.splitlines(), autojunk=False).get_opcodes()
    kept = all(tag in ("equal", "insert") or (tag == "replace" and set(range(a, b)) <= changed) for tag, a, b, _, _ in ops)
    if got != expected or not kept:
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
