"""What an import gives: entries, chains and the lines left out, written as registry YAML."""
import dataclasses
import re

import yaml

from downlink_airflow.crontab.host_paths import paths_of
from downlink_airflow.host_mounts import RESERVED_TARGETS, under


def reserved_target(path):
    return any(under(path, t) or under(t, path) for t in RESERVED_TARGETS)

PROG = "python -m downlink_airflow.cli import-crontab"


class Untranslatable(ValueError):
    """A crontab line that cannot become registry entries; str() is the reason."""



@dataclasses.dataclass
class Problem:
    source: str
    lineno: int
    reason: str
    line: str

    def __str__(self):
        return f"{self.source}:{self.lineno}: {self.reason}: {self.line}"


@dataclasses.dataclass
class Entry:
    name: str
    command: str
    chain: str
    lineno: int
    line: str
    after: str | None = None  # during translation: id() of the previous entry
    when: str = "success"
    environment: dict = dataclasses.field(default_factory=dict)
    email: list | None = None  # None: the registry's default recipients; []: nobody
    comments: list = dataclasses.field(default_factory=list)
    program: str | None = None  # the word naming the script (a path to copy, not to mount)

    def host_paths(self):
        return paths_of(self.command, self.environment, self.program)

    def data(self):
        out = {"name": self.name, "command": self.command, "chain": self.chain,
               # Cron never retried: a non-idempotent script must not run three times.
               "retries": 0}
        if self.after:
            out["after"] = self.after
        if self.when != "success":
            out["when"] = self.when
        if self.environment:
            out["environment"] = dict(self.environment)
        if self.email is not None:
            out["email"] = list(self.email)
        return out


@dataclasses.dataclass
class Chain:
    name: str
    schedule: str
    lines: list

    def description(self, source):
        nums = ", ".join(str(n) for n in self.lines)
        return f"imported from {source} line{'s' if len(self.lines) > 1 else ''} {nums}"


@dataclasses.dataclass
class ImportResult:
    source: str
    entries: list
    chains: dict  # name -> Chain, in order of first use
    problems: list  # Problem, in line order; each is a line left out
    notes: list  # comments for the top of the output (variables not carried, ...)

    @property
    def ok(self):
        return not self.problems

    def chains_data(self):
        # Paused: the chain goes live only when the team unpauses it, once its scripts are in the
        # image (dags/ is read live; an unpaused import would fail at its next tick).
        return {c.name: {"schedule": c.schedule, "description": c.description(self.source), "paused": True}
                for c in self.chains.values()}

    def scripts_data(self):
        return [e.data() for e in self.entries]

    def data(self):
        """What yaml.safe_load of to_yaml() gives: a complete registry."""
        return {"version": 1, "chains": self.chains_data(), "scripts": self.scripts_data()}

    def header_lines(self):
        lines = [f"Imported from {self.source} by `{PROG}`.",
                 "Cron ran these at its host's local time; chains run in UTC: check the schedules "
                 "(or give a chain `timezone:`).",
                 "Chains are written `paused: true`: unpause each (UI toggle, or `airflow dags unpause NAME`) "
                 "once its scripts are in the image.",
                 "Entries are written `retries: 0`, as cron never retried; raise it for scripts safe to rerun."]
        lines += self.notes
        lines += self.mount_lines()
        if self.problems:
            lines.append(f"Skipped, not translatable ({len(self.problems)}); fix them by hand:")
            lines += [f"  {p}" for p in self.problems]
        return [comment(text) for text in lines]

    def mount_lines(self):
        """The host folders the entries use, each with the entries using it, as suggested
        `mounts:` (never written as live mounts: the admin's allow-list decides)."""
        users = {}
        for e in self.entries:
            for path in e.host_paths():
                users.setdefault(path, []).append(e.name)
        # A folder under another listed one is covered by mounting that one.
        top = [p for p in sorted(users) if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in users)]
        if not top:
            return []
        lines = ["Host paths the commands use; steps see none of them until mounted. Suggested `mounts:` "
                 "(each under DOWNLINK_ALLOWED_MOUNTS; `rw: true` only where a script writes):"]
        for path in top:
            names = sorted({n for p, ns in users.items() if p == path or p.startswith(path.rstrip("/") + "/") for n in ns})
            clash = " (give it another target: in steps that path is Downlink's own)" if reserved_target(path) else ""
            lines.append(f"  {path}{clash}: {', '.join(names)}")
        return lines

    def chain_lines(self, indent="  "):
        out = []
        for name, chain in self.chains_data().items():
            out.append(f"{indent}{scalar(name)}:")
            for key, value in chain.items():
                out.append(f"{indent}{indent}{key}: {scalar(value)}")
        return out

    def script_lines(self, indent="  "):
        out = []
        for entry in self.entries:
            out.append(f"{indent}# {self.source}:{entry.lineno}: {clean(entry.line)}")
            out += [f"{indent}# {clean(c)}" for c in entry.comments]
            first = True
            for key, value in entry.data().items():
                lead = f"{indent}- " if first else f"{indent}  "
                first = False
                if key == "environment":
                    out.append(f"{lead}environment:")
                    out += [f"{indent}    {scalar(k)}: {scalar(v)}" for k, v in value.items()]
                else:
                    out.append(f"{lead}{key}: {scalar(value)}")
        return out

    def to_yaml(self):
        lines = self.header_lines() + ["version: 1"]
        lines += ["chains:"] + self.chain_lines() if self.chains else ["chains: {}"]
        lines += ["scripts:"] + self.script_lines() if self.entries else ["scripts: []"]
        return "\n".join(lines) + "\n"


def scalar(value):
    """One value in YAML flow syntax, quoted by PyYAML where needed (so it always round-trips and is
    also safe inside block context)."""
    for style in (None, '"'):  # PyYAML's choice, else double quotes (e.g. for NEL, which it folds)
        text = yaml.safe_dump([value], default_flow_style=True, default_style=style, width=2 ** 31,
                              allow_unicode=True).strip()
        if text.endswith("..."):
            text = text[:-3].strip()
        if yaml.safe_load(text) == [value] and yaml.safe_load(f"k: {text[1:-1]}") == {"k": value}:
            return text[1:-1]
    raise ValueError(f"cannot write {value!r} as YAML")


def clean(text):
    """Text made safe for a one-line YAML comment."""
    return re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", "?", text)


def comment(text):
    return ("# " + clean(text)).rstrip()


