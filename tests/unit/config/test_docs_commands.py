"""README.md and docs/*.md against the repository: every `make TARGET` they show in code (spans or
blocks) is a target of the Makefile; every `tools/...` they name in code exists, and the ones
shown as commands (an executable, or run with python) answer --help with exit 0; every relative
link points at a file that exists, and its #anchor at a heading there (GitHub's slugs).
Runs on the host (make test-unit-config); nothing here starts a container or needs the stack."""
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
FENCE = re.compile(r"^(```|~~~)")
SPAN = re.compile(r"(`+)(.+?)\1")
# `make` where a command starts (a line or span, after ; && | ( sudo or VAR=value), so a package
# list such as `dnf install make git` is not read as a target.
MAKE = re.compile(r"(?:^|[;&|(]|\bsudo|^\s*[A-Z_][A-Z0-9_]*=\S*)[ \t]*make[ \t]+([a-z][a-z0-9_-]*)(?![\w=-])", re.M)
TOOL = re.compile(r"(?<![\w/.-])tools/[A-Za-z0-9_./<>*-]*[A-Za-z0-9_/>*-]")
PYTHON_TOOL = re.compile(r"\bpython3?\s+(tools/\S+)")
# A tool run directly: where a command starts, with arguments after it (a bare path is a mention).
DIRECT_TOOL = re.compile(r"(?:^|[;&|(]|\bsudo|^\s*[A-Z_][A-Z0-9_]*=\S*)[ \t]*(tools/[A-Za-z0-9_./-]+)[ \t]+\S", re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
RULE = re.compile(r"^([A-Za-z0-9_-]+(?:\s+[A-Za-z0-9_-]+)*)\s*:(?![:=])", re.M)


def split(path):
    """(code, prose) of a markdown file: the text of fenced blocks and inline spans, and the
    rest (with the spans cut out, so a link shown as code is not a link)."""
    code, prose, fenced = [], [], False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if FENCE.match(line.strip()):
                fenced = not fenced
                continue
            if fenced:
                code.append(line)
            else:
                code.extend(m.group(2) for m in SPAN.finditer(line))
                prose.append(SPAN.sub(" ", line))
    return "\n".join(code), "".join(prose)


def headings(path):
    """The anchors GitHub gives a file's headings: lowercase, punctuation dropped except - and _,
    spaces to -, a repeated slug numbered -1, -2 ..."""
    slugs, seen, fenced = set(), {}, False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if FENCE.match(line.strip()):
                fenced = not fenced
            m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # a link's text only
                slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
                n = seen.get(slug, 0)
                seen[slug] = n + 1
                slugs.add(slug if n == 0 else f"{slug}-{n}")
    return slugs


def rel(path):
    return os.path.relpath(path, ROOT)


@pytest.fixture(scope="module")
def make_targets():
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as fh:
        text = fh.read()
    targets = {t for m in RULE.finditer(text) for t in m.group(1).split()}
    assert {"up", "test", "deploy", "backfill"} <= targets, "Makefile: rules not found"
    return targets


def shown(pattern):
    """[(doc, match)] of a pattern over the code of every doc."""
    found = []
    for doc in DOCS:
        code, _ = split(doc)
        found.extend((rel(doc), m) for m in pattern.finditer(code))
    return found


def test_the_docs_are_found():
    names = {rel(d) for d in DOCS}
    assert {"README.md", "docs/configuration.md", "docs/registry.md"} <= names


def test_every_make_target_shown_is_a_makefile_target(make_targets):
    uses = shown(MAKE)
    assert len(uses) > 20, "no `make TARGET` found in the docs"
    wrong = sorted({f"{doc}: make {m.group(1)}" for doc, m in uses if m.group(1) not in make_targets})
    assert not wrong, "not a Makefile target:\n" + "\n".join(wrong)


def tool_paths():
    """{tools/... as shown: [existing paths]} (a <placeholder> matches any name)."""
    out = {}
    for doc, m in shown(TOOL):
        name = m.group(0).rstrip(".")
        pattern = re.sub(r"<[^>]+>", "*", name)
        out.setdefault(name, (doc, sorted(glob.glob(os.path.join(ROOT, pattern)))))
    return out


def commands():
    """The tools shown as commands: executable files, and scripts run with python."""
    run_with_python = {re.sub(r"<[^>]+>", "*", m.group(1)) for _, m in shown(PYTHON_TOOL)}
    found = set()
    for name, (_, paths) in tool_paths().items():
        for path in paths:
            pattern = re.sub(r"<[^>]+>", "*", name)
            if os.path.isfile(path) and (os.access(path, os.X_OK) or pattern in run_with_python):
                found.add(rel(path))
    return sorted(found)


def test_every_tool_named_exists():
    tools = tool_paths()
    assert len(tools) > 5, "no tools/ found in the docs"
    missing = sorted(f"{doc}: {name}" for name, (doc, paths) in tools.items() if not paths)
    assert not missing, "named in the docs but not in the repository:\n" + "\n".join(missing)


@pytest.mark.parametrize("tool", commands())
def test_every_tool_command_answers_help(tool):
    path = os.path.join(ROOT, tool)
    argv = [sys.executable, path] if tool.endswith(".py") else [path]
    result = subprocess.run(argv + ["--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{tool} --help: exit {result.returncode}\n{result.stderr[-2000:]}"
    assert result.stdout.strip(), f"{tool} --help printed nothing"


def test_a_tool_run_directly_is_executable():
    wrong = sorted({f"{doc}: {m.group(1)}" for doc, m in shown(DIRECT_TOOL)
                    if not os.access(os.path.join(ROOT, m.group(1)), os.X_OK)})
    assert not wrong, "shown as a command but not executable (chmod +x, with a #! line):\n" + "\n".join(wrong)


def test_the_commands_include_the_main_tools():
    assert {"tools/backfill.py", "tools/dagrun.py", "tools/publish_arrival.py", "tools/backup.sh"} <= set(commands())


@pytest.mark.parametrize("doc", [rel(d) for d in DOCS])
def test_every_relative_link_and_anchor_resolves(doc):
    _, prose = split(os.path.join(ROOT, doc))
    wrong = []
    for m in LINK.finditer(prose):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(ROOT, os.path.dirname(doc), path)) if path else os.path.join(ROOT, doc)
        if not os.path.exists(full):
            wrong.append(f"{target}: no such file")
        elif anchor and full.endswith(".md") and anchor not in headings(full):
            wrong.append(f"{target}: no heading #{anchor} in {rel(full)}")
    assert not wrong, f"{doc}:\n" + "\n".join(wrong)


def test_the_readme_indexes_every_docs_page():
    _, prose = split(os.path.join(ROOT, "README.md"))
    linked = {os.path.normpath(m.group(1).partition("#")[0]) for m in LINK.finditer(prose)}
    missing = sorted(rel(d) for d in DOCS[1:] if rel(d) not in linked)
    assert not missing, "README.md's docs index lacks:\n" + "\n".join(missing)


def test_the_slugs_follow_githubs_rules(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# What happens when...\n## 1. Several workers on one host\n## What `make test` needs\n"
                    "## Moving a crontab over\n## Moving a crontab over\n```\n# not a heading\n```\n")
    assert headings(str(page)) == {"what-happens-when", "1-several-workers-on-one-host", "what-make-test-needs",
                                   "moving-a-crontab-over", "moving-a-crontab-over-1"}
