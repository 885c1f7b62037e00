"""The script registry (dags/registry.yaml): every step of every chain, the built-in ones and the
team's own, read and checked here. Pure Python (PyYAML, croniter): `make check` and the unit tests
use it without Airflow; registry_dags turns a checked Registry into DAGs.

A minimal entry is four lines:

    - name: header_summary
      command: header-summary --night {night}
      after: index

Every problem is reported, each naming the entry and the field; an entry with a problem is left
out of its chain together with what runs after it, and the other entries and chains still load
(see `Registry.problems`).
"""
import dataclasses
import difflib
import os
import re
import shlex
import zoneinfo
from datetime import timedelta

import yaml

from downlink_airflow import step_secrets
from downlink_airflow.host_mounts import parse_allow_list, parse_mount

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
DEFAULT_CHAIN = "daily_chain"
MACROS = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
WHEN = {"success": "all_success", "always": "all_done"}
# Characters that make a command string shell syntax (pipes, redirects, variables, lists, globs).
SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?~\[\]{}\\\n]|^\s*\w+=")
PLACEHOLDERS = ("night", "run_dir", "run_id", "data")
DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
MEMORY = re.compile(r"^\s*\d+\s*[bkmg]?\s*$", re.IGNORECASE)
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+$")
ENV_REF = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
# Where a step runs. `heavy` (calibration and other big reductions) is a Celery queue of its own
# and an Airflow pool of the same name that caps such steps across all workers; with the
# LocalExecutor only the pool matters. Only known queues: a task sent to a queue no worker
# consumes would wait forever.
QUEUES = ("default", "heavy")
# The images a step may run: `astro` (the deployed downlink/astro:<tag>) or another of the
# project's own images. The docker proxy refuses every other image (PROXY_ALLOWED_IMAGES in
# docker-compose.yaml), so such an entry would only fail when its task starts; refuse it here.
PROJECT_IMAGE_PREFIX = "downlink/"

ENTRY_FIELDS = {
    "name", "command", "after", "when", "chain", "schedule", "retries", "retry_delay", "timeout",
    "memory", "memory_max", "environment", "email", "image", "description", "warn_on_stderr",
    "writes_archive", "queue", "ingest", "mounts", "secrets",
}
# Host mounts and secrets belong to one step each: never handed to every entry by `defaults:`.
DEFAULT_FIELDS = ENTRY_FIELDS - {"name", "command", "after", "schedule", "mounts", "secrets"}
CHAIN_FIELDS = {"schedule", "description", "email", "tags", "max_active_runs", "timezone", "paused"}
TOP_FIELDS = {"version", "defaults", "chains", "scripts"}


class RegistryError(Exception):
    """The registry cannot be used at all (unreadable, not YAML, wrong shape), or `check` failed."""

    def __init__(self, problems, source="registry.yaml"):
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclasses.dataclass(frozen=True)
class Script:
    name: str
    command: object  # str or list of str, placeholders not yet filled
    chain: str
    after: tuple = ()
    when: str = "success"
    retries: int = 2
    retry_delay: timedelta = timedelta(seconds=20)
    timeout: timedelta | None = None
    memory: str | None = None
    memory_max: str | None = None  # out of memory: rerun with twice the memory, up to this ceiling
    environment: dict = dataclasses.field(default_factory=dict)
    email: tuple | None = None  # None: the chain's or the team's default; () : nobody
    image: str = "astro"
    description: str = ""
    warn_on_stderr: bool = False  # cron's habit: mail a warning when a successful run wrote to stderr
    writes_archive: bool = False  # raw/ is mounted read-only in every step but the one(s) saying so
    queue: str = "default"  # one of QUEUES; `heavy` also runs in the `heavy` pool
    # Brings a night's files in (download, archive, index): the arrivals DAG runs the daily chain's
    # ingest steps as files appear, and every ingest step shares the one-slot ingest pool.
    ingest: bool = False
    mounts: tuple = ()  # HostMount: host folders bound into this step (under DOWNLINK_ALLOWED_MOUNTS)
    secrets: tuple = ()  # names of files in DOWNLINK_SECRETS_DIR, at /run/secrets/NAME in this step

    @property
    def pool(self):
        """The Airflow pool that caps this step's queue across workers (None: the default pool)."""
        return None if self.queue == "default" else self.queue

    @property
    def trigger_rule(self):
        return WHEN[self.when]

    def argv(self, values):
        """The container command: placeholders filled; a string with shell syntax runs under sh -c."""
        if isinstance(self.command, list):
            return [fill(arg, values) for arg in self.command]
        if SHELL_SYNTAX.search(fill(self.command, {key: "x" for key in PLACEHOLDERS})):
            return ["sh", "-c", fill(self.command, values)]
        # Split first: the values are Jinja templates with spaces of their own.
        return [fill(arg, values) for arg in shlex.split(self.command)]


@dataclasses.dataclass(frozen=True)
class Chain:
    name: str
    schedule: str | None = None
    description: str = ""
    email: tuple | None = None
    tags: tuple = ()
    max_active_runs: int = 1
    timezone: str = "UTC"  # the zone the cron schedule is read in (IANA name; DST by the timetable)
    paused: bool = False  # created paused (Airflow applies it only when the DAG is first created)


@dataclasses.dataclass
class Registry:
    source: str
    chains: dict
    scripts: list  # the usable entries, in file order
    problems: list  # messages; entries named there are not in `scripts`

    def chain_scripts(self, chain):
        return [s for s in self.scripts if s.chain == chain]

    def check(self):
        """Raise RegistryError when anything is wrong (what `make check` and deploy use)."""
        if self.problems:
            raise RegistryError(self.problems, self.source)
        return self


def fill(text, values):
    """{night}, {run_dir}, {run_id}, {data} -> values; other braces (shell ${VAR}, awk) are left alone."""
    for key in PLACEHOLDERS:
        text = text.replace("{" + key + "}", values.get(key, "{" + key + "}"))
    return text


def expand_env(text, env):
    """${VAR} and ${VAR:-default} from the environment, as docker compose does."""
    def sub(match):
        value = env.get(match.group(1))
        return value if value else (match.group(2) or "")
    return ENV_REF.sub(sub, text)


def parse_duration(value):
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 30m, 2h or a number of seconds")
    if isinstance(value, (int, float)) and value >= 0:
        return timedelta(seconds=value)
    match = DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (e.g. 90s, 30m, 2h, or seconds)")
    number, unit = int(match.group(1)), match.group(2) or "s"
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: number})


def check_schedule(value):
    """None (manual only), a macro, or a valid 5-field cron expression."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a schedule: use 5 cron fields, an @macro, or null")
    value = " ".join(value.split())
    if value.startswith("@"):
        if value not in MACROS:
            raise ValueError(f"unknown macro {value!r} (one of {', '.join(sorted(MACROS))})")
        return value
    if len(value.split()) != 5:
        raise ValueError(f"{value!r} has {len(value.split())} fields; cron needs 5 (minute hour day month weekday)")
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a valid cron expression")
    return value


def check_timezone(value):
    """An IANA zone name such as Europe/Berlin (what zoneinfo, and so Airflow's timetable, knows)."""
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ValueError(f"{value!r} is not a time zone: use an IANA name such as Europe/Berlin or UTC")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a known IANA time zone (e.g. Europe/Berlin, America/Santiago, UTC)") from exc
    return value


def _suggest(word, choices):
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class _Checker:
    def __init__(self, source, env):
        self.source = source
        self.env = env
        self.problems = []
        self._allowed_mounts = None

    def allowed_mounts(self):
        """DOWNLINK_ALLOWED_MOUNTS of `env`, read once (a bad list is one problem, and no mounts)."""
        if self._allowed_mounts is None:
            from downlink_airflow.config import Settings

            try:
                self._allowed_mounts = parse_allow_list(Settings.from_env(self.env).allowed_mounts)
            except ValueError as exc:
                self.problem("settings", "DOWNLINK_ALLOWED_MOUNTS", str(exc))
                self._allowed_mounts = ()
        return self._allowed_mounts

    def mounts(self, where, raw):
        """(HostMounts, ok) of an entry's `mounts:`; each bad item is one problem."""
        items = raw if isinstance(raw, list) else [raw]
        out, ok, targets = [], True, set()
        for i, item in enumerate(items):
            try:
                mount = parse_mount(item, self.allowed_mounts())
            except ValueError as exc:
                self.problem(where, f"mounts[{i}]", str(exc))
                ok = False
                continue
            if mount.target in targets:
                self.problem(where, f"mounts[{i}]", f"target {mount.target} is mounted twice")
                ok = False
            targets.add(mount.target)
            out.append(mount)
        return tuple(out), ok

    def secrets(self, where, raw):
        """(names, ok) of an entry's `secrets:`; the files themselves are checked by `make check`."""
        names, ok = [], True
        for i, name in enumerate(raw if isinstance(raw, list) else [raw]):
            try:
                names.append(step_secrets.check_name(name))
            except ValueError as exc:
                self.problem(where, f"secrets[{i}]", str(exc))
                ok = False
        if len(set(names)) != len(names):
            self.problem(where, "secrets", "a secret is named twice")
            ok = False
        return tuple(names), ok

    def problem(self, where, field, message):
        self.problems.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")

    def fields(self, where, mapping, allowed):
        for key in mapping:
            if key not in allowed:
                self.problem(where, key, f"unknown field{_suggest(key, allowed)}; allowed: {', '.join(sorted(allowed))}")
                return False
        return True

    def settings(self, where, raw, base):
        """Check an entry's (or the defaults') optional fields; returns Script keyword arguments."""
        out, ok = {}, True

        def bad(field, message):
            nonlocal ok
            ok = False
            self.problem(where, field, message)

        if "when" in raw:
            if raw["when"] in WHEN:
                out["when"] = raw["when"]
            else:
                bad("when", f"{raw['when']!r} is not one of: success (cron's &&), always (cron's ;)")
        if "retries" in raw:
            value = raw["retries"]
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 20:
                out["retries"] = value
            else:
                bad("retries", f"{value!r} is not a whole number from 0 to 20")
        for field in ("retry_delay", "timeout"):
            if field in raw:
                try:
                    out[field] = parse_duration(raw[field])
                except ValueError as exc:
                    bad(field, str(exc))
        for field in ("memory", "memory_max"):
            if field in raw:
                value = raw[field]
                if isinstance(value, (str, int)) and not isinstance(value, bool) and MEMORY.match(str(value)):
                    out[field] = str(value).strip().lower()
                else:
                    bad(field, f"{value!r} is not a memory size such as 512m or 2g")
        if "environment" in raw:
            env = raw["environment"]
            if isinstance(env, dict) and all(isinstance(k, str) and re.match(r"^[A-Za-z_]\w*$", k) for k in env):
                out["environment"] = {**base.get("environment", {}), **{k: "" if v is None else str(v) for k, v in env.items()}}
            else:
                bad("environment", "must be a map of VARIABLE: value")
        if "email" in raw:
            emails = _as_list(raw["email"])
            wrong = [e for e in emails if not isinstance(e, str) or not EMAIL.match(e)]
            if wrong:
                bad("email", f"not an address: {', '.join(map(repr, wrong))}")
            else:
                out["email"] = tuple(emails)
        for flag in ("warn_on_stderr", "writes_archive", "ingest"):
            if flag in raw:
                if isinstance(raw[flag], bool):
                    out[flag] = raw[flag]
                else:
                    bad(flag, f"{raw[flag]!r} is not true or false")
        if "queue" in raw:
            if raw["queue"] in QUEUES:
                out["queue"] = raw["queue"]
            else:
                bad("queue", f"{raw['queue']!r} is not a known queue (one of: {', '.join(QUEUES)})"
                             f"{_suggest(raw['queue'], QUEUES)}")
        for field in ("image", "description", "chain"):
            if field in raw:
                if isinstance(raw[field], str) and raw[field].strip():
                    out[field] = raw[field].strip()
                else:
                    bad(field, "must be a non-empty string")
        image = out.get("image")
        if image is not None and image != "astro" and not (
                image.startswith(PROJECT_IMAGE_PREFIX) and len(image) > len(PROJECT_IMAGE_PREFIX)):
            out.pop("image")
            bad("image", f"{image!r} is not one of the project's images: use astro (the deployed astro image) "
                         f"or a {PROJECT_IMAGE_PREFIX}NAME:TAG image; the docker proxy runs no other "
                         f"(PROXY_ALLOWED_IMAGES={PROJECT_IMAGE_PREFIX})")
        return out, ok


def parse_registry(data, source="registry.yaml", env=None):
    """A Registry from the YAML's data. Raises RegistryError only when nothing can be used;
    problems with single entries or chains are collected in `Registry.problems`.
    Three passes, in the order their problems are listed: chains, entries, the graph of `after`."""
    env = os.environ if env is None else env
    c = _Checker(source, env)
    defaults = _parse_top(c, data)
    chains, broken_chains = _parse_chains(c, data.get("chains") or {})
    candidates, broken = _parse_entries(c, data.get("scripts") or [], defaults, chains, broken_chains)
    broken |= _check_graph(c, candidates, broken)
    scripts = [s for _, name, s in candidates if name not in broken]
    return Registry(source=source, chains=chains, scripts=scripts, problems=c.problems)


def _parse_top(c, data):
    """The top-level keys and version checked; returns the defaults' Script keyword arguments."""
    if not isinstance(data, dict):
        raise RegistryError(["the file must be a mapping with keys: version, chains, scripts"], c.source)
    if not c.fields("registry", data, TOP_FIELDS):
        raise RegistryError(c.problems, c.source)
    if data.get("version", 1) != 1:
        raise RegistryError([f"registry: version: {data.get('version')!r} is not supported (1)"], c.source)
    defaults_raw = data.get("defaults") or {}
    if not isinstance(defaults_raw, dict):
        raise RegistryError(["defaults: must be a mapping of entry fields"], c.source)
    c.fields("defaults", defaults_raw, DEFAULT_FIELDS)
    defaults, _ = c.settings("defaults", {k: v for k, v in defaults_raw.items() if k in DEFAULT_FIELDS}, {})
    return defaults


def _parse_chains(c, chains_raw):
    """The chains pass: ({name: Chain}, names of the chains with a problem)."""
    if not isinstance(chains_raw, dict):
        raise RegistryError(["chains: must be a mapping of chain name to its settings"], c.source)
    chains, broken_chains = {}, set()
    for name, raw in chains_raw.items():
        chain = _parse_chain(c, name, raw or {})
        if chain is None:
            broken_chains.add(name)
        else:
            chains[name] = chain
    return chains, broken_chains


def _parse_chain(c, name, raw):
    """One chain, or None (and a problem) when it cannot be used."""
    where = f"chain {name!r}"
    if not isinstance(name, str) or not NAME.match(name):
        c.problem(where, "", "a chain name may hold letters, digits, _ . - only")
        return None
    if not isinstance(raw, dict) or not c.fields(where, raw, CHAIN_FIELDS):
        return None
    try:
        schedule = raw.get("schedule")
        schedule = check_schedule(expand_env(schedule, c.env) if isinstance(schedule, str) else schedule)
    except ValueError as exc:
        c.problem(where, "schedule", str(exc))
        return None
    emails = _as_list(raw.get("email"))
    if any(not isinstance(e, str) or not EMAIL.match(e) for e in emails):
        c.problem(where, "email", f"not an address in {emails!r}")
        return None
    runs = raw.get("max_active_runs", 1)
    if not isinstance(runs, int) or isinstance(runs, bool) or not 1 <= runs <= 64:
        # int() of anything else raised here and took the whole registry down with it.
        c.problem(where, "max_active_runs", f"{runs!r} is not a whole number from 1 to 64")
        return None
    paused = raw.get("paused", False)
    if not isinstance(paused, bool):
        c.problem(where, "paused", f"{paused!r} is not true or false")
        return None
    timezone = raw.get("timezone", "UTC")
    try:
        check_timezone(timezone)
    except ValueError as exc:
        c.problem(where, "timezone", str(exc))
        return None
    return Chain(name=name, schedule=schedule, description=str(raw.get("description") or ""),
                 email=tuple(emails) if "email" in raw else None,
                 tags=tuple(_as_list(raw.get("tags"))), max_active_runs=runs,
                 timezone=timezone, paused=paused)


def _parse_entries(c, scripts_raw, defaults, chains, broken_chains):
    """The entries pass: ([(index, name, Script)], names of the entries with a problem). An entry
    with its own schedule adds its chain to `chains`."""
    if not isinstance(scripts_raw, list):
        raise RegistryError(["scripts: must be a list of entries (each starting with '- name:')"], c.source)
    candidates, seen, broken = [], {}, set()
    for index, raw in enumerate(scripts_raw):
        if not isinstance(raw, dict):
            c.problem(f"scripts[{index}]", "", "an entry must be a mapping with at least name and command")
            continue
        name = raw.get("name")
        where = f"scripts[{index}] {name!r}" if name is not None else f"scripts[{index}]"
        if not isinstance(name, str) or not NAME.match(name):
            c.problem(where, "name", "required; letters, digits, _ . - only (it becomes the task id)")
            continue
        if name in seen:
            # The first keeps running (it may be a built-in step others depend on); this one is out.
            c.problem(where, "name", f"duplicate: {name!r} is already scripts[{seen[name]}]; this entry is left out")
            continue
        seen[name] = index
        script, ok = _parse_entry(c, where, name, raw, defaults, chains, broken_chains)
        if not ok:
            broken.add(name)
        candidates.append((index, name, script))
    return candidates, broken


def _parse_command(c, where, command):
    """(the command, whether it is usable): a non-empty string the shell can split, or a list."""
    if isinstance(command, list):
        ok = bool(command) and all(isinstance(a, (str, int, float)) for a in command)
        if not ok:
            c.problem(where, "command", "a list command must hold strings")
        return [str(a) for a in command], ok
    if not isinstance(command, str) or not command.strip():
        c.problem(where, "command", "required: the program and its arguments")
        return command, False
    try:
        shlex.split(command)
    except ValueError as exc:
        c.problem(where, "command", f"cannot be parsed: {exc}")
        return command, False
    return command, True


def _parse_entry(c, where, name, raw, defaults, chains, broken_chains):
    """(Script, whether it is usable) for one named entry."""
    ok = c.fields(where, raw, ENTRY_FIELDS)
    command, command_ok = _parse_command(c, where, raw.get("command"))
    ok = ok and command_ok
    after = _as_list(raw.get("after"))
    if not all(isinstance(a, str) for a in after):
        c.problem(where, "after", "must be a script name or a list of them")
        ok = False
    kwargs, settings_ok = c.settings(where, raw, defaults)
    chain = kwargs.pop("chain", None)
    if "schedule" in raw:
        if chain is not None:
            c.problem(where, "schedule", f"give either a schedule (own chain) or chain {chain!r}, not both")
            ok = False
        else:
            try:
                schedule = check_schedule(raw["schedule"])
                chain = name
                if name in chains:
                    c.problem(where, "schedule", f"a chain named {name!r} already exists; use chain: {name}")
                    ok = False
                else:
                    chains[name] = Chain(name=name, schedule=schedule, description=str(raw.get("description") or ""))
            except ValueError as exc:
                c.problem(where, "schedule", str(exc))
                ok = False
    chain = chain or defaults.get("chain") or DEFAULT_CHAIN
    if chain not in chains and chain not in broken_chains:
        c.problem(where, "chain", f"unknown chain {chain!r}{_suggest(chain, chains)}; declare it under chains:")
        ok = False
    if chain in broken_chains:
        ok = False
    merged = {**defaults, **kwargs}
    merged.pop("chain", None)
    if "mounts" in raw:
        merged["mounts"], mounts_ok = c.mounts(where, raw["mounts"])
        ok = ok and mounts_ok
    if "secrets" in raw:
        merged["secrets"], secrets_ok = c.secrets(where, raw["secrets"])
        ok = ok and secrets_ok
    return Script(name=name, command=command, chain=chain, after=tuple(after), **merged), ok and settings_ok


def _check_graph(c, candidates, broken):
    """The graph pass over `after`: unknown or cross-chain dependencies, cycles, and whatever runs
    after a broken entry. Returns the names it finds broken (with `broken`)."""
    broken = set(broken)
    by_name = {s.name: (i, s) for i, _, s in candidates}
    for index, name, script in candidates:
        where = f"scripts[{index}] {name!r}"
        for dep in script.after:
            if dep not in by_name and dep not in broken:
                c.problem(where, "after", f"unknown script {dep!r}{_suggest(dep, by_name)}")
                broken.add(name)
            elif dep in by_name and by_name[dep][1].chain != script.chain:
                c.problem(where, "after", f"{dep!r} is in chain {by_name[dep][1].chain!r}, not {script.chain!r}; "
                                          "an entry can only run after entries of its own chain")
                broken.add(name)
            elif dep == name:
                c.problem(where, "after", "an entry cannot run after itself")
                broken.add(name)

    for cycle in _cycles({name: s.after for _, name, s in candidates}):
        first = cycle[0]
        c.problem(f"scripts[{by_name[first][0]}] {first!r}", "after", "cycle: " + " -> ".join(cycle + [first]))
        broken.update(cycle)

    # Whatever runs after a broken entry cannot run either: leave it out too, and say so.
    changed = True
    while changed:
        changed = False
        for index, name, script in candidates:
            if name not in broken and any(dep in broken for dep in script.after):
                bad = sorted(dep for dep in script.after if dep in broken)
                c.problem(f"scripts[{index}] {name!r}", "after", f"left out because {', '.join(map(repr, bad))} has a problem")
                broken.add(name)
                changed = True
    return broken


def _cycles(graph):
    """Each dependency cycle once, as a list of names (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in graph:
                continue
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return [cycle for cycle in found if len(cycle) > 1]


def load_registry(path, env=None):
    """Read and check the registry file; RegistryError names the file when it cannot be used."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise RegistryError([f"cannot read: {exc.strerror}"], path) from exc
    return load_registry_text(text, path, env)


def load_registry_text(text, source="registry.yaml", env=None):
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RegistryError([f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}"], source) from exc
    return parse_registry(data if data is not None else {}, source, env)


def default_path():
    from downlink_airflow.config import Settings

    return Settings.from_env().registry or os.path.join(
        os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "/opt/airflow/dags"), "registry.yaml")


def read_programs(path):
    """The astro image's PATH list (/usr/share/downlink/path-programs.txt: names and absolute
    paths, one a line) as a set."""
    with open(path, encoding="utf-8") as fh:
        return {line.strip() for line in fh if line.strip()}


def programs_missing(registry, programs, image="the astro image"):
    """Problems, one per entry, for a command whose program is not in `programs` (the image's
    PATH list: names and absolute paths). Only entries run in the astro image are checked; a
    shell-syntax command is checked word by word where command_programs can tell (else skipped)."""
    from downlink_airflow.command_programs import programs_of

    programs = set(programs)
    names = sorted(p for p in programs if "/" not in p)
    out = []
    for s in registry.scripts:
        if s.image != "astro":
            continue
        shell = isinstance(s.command, str) and bool(
            SHELL_SYNTAX.search(fill(s.command, {key: "x" for key in PLACEHOLDERS})))
        missing = [p for p in programs_of(s.command, shell) or [] if p not in programs]
        for prog in dict.fromkeys(missing):
            hint = _suggest(os.path.basename(prog), names)
            where = "by that path" if prog.startswith("/") else "on its PATH"
            copy = " (copy the script into images/astro/scripts/ and call it by name)" if prog.startswith("/") else ""
            out.append(f"entry {s.name!r}: command: {prog!r} is not in {image} {where}{hint}{copy}")
    return out
