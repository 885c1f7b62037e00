"""`import-crontab`: a user crontab turned into script-registry entries (dags/registry.yaml).

    python -m downlink_airflow.cli import-crontab FILE [--into REGISTRY] [--wrapper NAME ...] [--skip-unsupported]
    make import-crontab CRONTAB=FILE [INTO=dags/registry.yaml] [ARGS=--skip-unsupported]

Pure Python + PyYAML (no Airflow): tests call `import_crontab(text)` directly.

How a crontab maps onto the registry
------------------------------------
* Every crontab line becomes a chain, named after its schedule (`30 2 * * *` -> cron_daily_0230,
  `15 * * * *` -> cron_hourly_15, @daily -> cron_daily, else cron_<fields>); lines with the same
  schedule share the chain (cron starts them at the same moment; entries without `after` in one
  chain run concurrently too). Schedules are kept as written: cron used the host's local time,
  chains run in UTC (CRON_TZ/TZ other than UTC is a problem).
* A command list is split at `&&` and `;`, one entry per command, each `after` the previous one:
  `a && b` -> b runs when a succeeded (when: success, Airflow's all_success); `a ; b` -> b runs once
  a is done whatever its outcome (when: always, all_done).
  Shell precedence: `;` separates and-or lists, `&&` binds tighter, so `a && b ; c` is
  `(a && b) ; c`: cron runs c after b, and also when a failed and b never ran. The importer gives
  c `after: b, when: always`. In Airflow, when a fails b ends "upstream_failed", which all_done
  counts as done, so c still runs, as in cron. c never needs a direct edge to a. A chain of entries
  each `after` the previous one, with when = the operator in front of it, therefore reproduces any
  mix of `&&` and `;`. The registry's failure watcher still marks the run failed.
* `||`, `&` (background), `( )` subshells, `{ }` groups, if/for/while/case, here-documents and
  process substitution cannot be split into tasks: the line is a problem.
* Environment set-up is dropped, because the image is the environment: wrapper scripts
  (`cron_setup.sh x.py --y` -> `x.py --y`), set-up commands in a list (`ur_setup && x`,
  `source ~/.bashrc; x`, `. /etc/profile`, anything named *_setup, *_setup.sh, *setup_env*, or
  given with --wrapper), and login shells (`bash -lc 'a && b'` -> a, b). When such a step is dropped
  from a list, the step after it runs first. It is `after` whatever ran before the set-up step:
  when: success only if every operator on the way was `&&` (the set-up is taken to succeed).
* `cd DIR`, `umask`, `ulimit`, `export X=$Y` change the shell and not a task. Each entry runs in its
  own container, so they are put in front of every later command of the line (`cd DIR && cmd`).
  `export X=value` and `X=value` on their own become `environment`.
* Crontab variables: MAILTO -> `email` of the entries below it (MAILTO="" -> `email: []`; a local
  user without @ is a problem). SHELL, PATH, HOME, USER and LOGNAME are not carried (the image is
  the environment), which a comment at the top says. Any other VAR=value -> `environment`.
* Redirects: `>/dev/null` and the like stay in the command (sh -c runs it, and stdout is dropped as
  in cron), with a comment. Redirects into log files (*.log, *.out, *.err, .../log/..., .../logs/...,
  /var/log) are removed, because a step's container is discarded: the output goes to the task log instead.
  Other file redirects stay, with a comment. Bash's `&>X` becomes `>X 2>&1`, which is what it
  meant (/bin/sh would have put the command in the background).
* Names: the script's basename without extension (`python3 /home/obs/bin/reduce.py` -> reduce,
  `python -m obs.qc` -> qc), anything but letters, digits and _ replaced by _ (the registry's house
  style), then made unique with _2, _3, ... (also against the registry given with --into). Scripts
  kept by a path outside the image get a comment: copy them into images/astro/scripts/.
* Cron's `%` (unescaped: a newline, with the rest sent to stdin) is a problem; `\\%` becomes `%`.
* Retries follow the registry's defaults. Cron never retried, so the header says to set
  `retries: 0` on any script that must not run twice.
"""
import argparse
import dataclasses
import fnmatch
import os
import re
import shlex
import sys
import tempfile

import yaml

PROG = "python -m downlink_airflow.cli import-crontab"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
ASSIGNMENT_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
ASSIGNMENT_WORD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)

# macro -> (its five fields, the chain name it gives)
MACROS = {
    "@hourly": ("0 * * * *", "cron_hourly"),
    "@daily": ("0 0 * * *", "cron_daily"),
    "@midnight": ("0 0 * * *", "cron_daily"),
    "@weekly": ("0 0 * * 0", "cron_weekly"),
    "@monthly": ("0 0 1 * *", "cron_monthly"),
    "@yearly": ("0 0 1 1 *", "cron_yearly"),
    "@annually": ("0 0 1 1 *", "cron_yearly"),
}
MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
FIELDS = (  # name, low, high, names
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)

UTC_ZONES = {"utc", "etc/utc", "gmt", "etc/gmt", "utc0", "gmt0", "universal", "etc/universal", "zulu",
             "etc/zulu", "uct", "etc/uct", "gmt+0", "gmt-0", "etc/gmt+0", "etc/gmt-0"}
# Crontab variables that describe cron's environment, not the job's: the image supplies them.
NOT_CARRIED = {
    "SHELL": "commands run with sh -c in the image",
    "PATH": "scripts are called by name on the image's PATH",
    "HOME": "the image's entrypoint sets a writable HOME",
    "USER": "the image's entrypoint sets USER",
    "LOGNAME": "the image's entrypoint sets USER",
    "MAILFROM": "failure mail comes from Airflow's SMTP connection",
    "CONTENT_TYPE": "failure mail is Airflow's",
    "CONTENT_TRANSFER_ENCODING": "failure mail is Airflow's",
    "RANDOM_DELAY": "chains start on their schedule",
}

DEFAULT_WRAPPERS = ("ur_setup", "*_setup", "*_setup.sh", "*setup_env*")
SHELLS = {"sh", "bash", "dash", "ksh", "zsh", "mksh", "csh", "tcsh"}
INTERPRETER = re.compile(r"^(python[\d.]*|pypy[\d.]*|perl[\d.]*|ruby[\d.]*|Rscript|php[\d.]*|node|nodejs|tclsh[\d.]*"
                         r"|julia|octave|gdl|idl|irafcl|cl|java|sh|bash|dash|ksh|zsh|mksh|csh|tcsh)$")
# Commands that run another command: the entry is named after the command they run.
# name -> (its options that take a value, how many arguments come before the command)
PREFIX_COMMANDS = {
    "env": ({"-u", "--unset", "-C", "--chdir", "-S"}, 0), "nice": ({"-n", "--adjustment"}, 0),
    "ionice": ({"-c", "-n", "-p", "-t"}, 0), "nohup": (set(), 0), "time": ({"-f", "-o"}, 0),
    "timeout": ({"-s", "--signal", "-k", "--kill-after"}, 1), "flock": ({"-w", "--timeout", "-E"}, 1),
    "lckdo": ({"-w"}, 1), "chronic": (set(), 0), "cronic": (set(), 0), "exec": ({"-a"}, 0),
    "command": (set(), 0), "stdbuf": ({"-i", "-o", "-e"}, 0), "setsid": (set(), 0),
    "sudo": ({"-u", "-g", "-h", "-p"}, 0), "xvfb-run": ({"-n", "-s", "-f", "-e", "-p"}, 0),
    "taskset": (set(), 1), "numactl": (set(), 0), "run-one": (set(), 0),
}
STATE_COMMANDS = {"cd", "pushd", "umask", "ulimit", "set", "unset", "shopt", "alias", "trap", "readonly", "export"}
COMPOUND_WORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
                  "select", "function", "{", "}", "[["}
SYSTEM_DIRS = ("/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/")
REDIRECT = re.compile(r"(\d*)(<<<|<<-|<<|<&|<>|<\(|>>|>&|>\||>\(|&>>|&>|<|>)")
OPERATORS = ("&&", "||", ";;", "|&", ";", "|", "&", "(", ")")
METACHARS = " \t;&|<>()"
JINJA = re.compile(r"\{\{|\{%|\{#")


class Untranslatable(ValueError):
    """A crontab line that cannot become registry entries; str() is the reason."""


class MergeError(Exception):
    """--into could not merge into the registry; nothing was written."""


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
    after: str = None
    when: str = "success"
    environment: dict = dataclasses.field(default_factory=dict)
    email: list = None  # None: the registry's default recipients; []: nobody
    comments: list = dataclasses.field(default_factory=list)

    def data(self):
        out = {"name": self.name, "command": self.command, "chain": self.chain}
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
        return {c.name: {"schedule": c.schedule, "description": c.description(self.source)}
                for c in self.chains.values()}

    def scripts_data(self):
        return [e.data() for e in self.entries]

    def data(self):
        """What yaml.safe_load of to_yaml() gives: a complete registry."""
        return {"version": 1, "chains": self.chains_data(), "scripts": self.scripts_data()}

    def header_lines(self):
        lines = [f"Imported from {self.source} by `{PROG}`.",
                 "Cron ran these at its host's local time; chains run in UTC: check the schedules.",
                 "Cron never retried: set `retries: 0` on any script that must not run twice."]
        lines += self.notes
        if self.problems:
            lines.append(f"Skipped, not translatable ({len(self.problems)}); fix them by hand:")
            lines += [f"  {p}" for p in self.problems]
        return [comment(text) for text in lines]

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


# --------------------------------------------------------------------------------------------
# Schedules


def parse_field(text, field):
    name, low, high, names = field

    def number(token):
        if names and token.lower() in names:
            return names[token.lower()]
        if not token.isdigit():
            raise Untranslatable(f"{name} field {text!r}: {token!r} is not a number"
                                 + (f" or a name ({'/'.join(list(names)[:3])}...)" if names else ""))
        value = int(token)
        if not low <= value <= high:
            raise Untranslatable(f"{name} field {text!r}: {value} is out of range {low}-{high}")
        return value

    values = set()
    for item in text.split(","):
        if not item:
            raise Untranslatable(f"{name} field {text!r}: empty list item")
        rng, slash, step = item.partition("/")
        if slash:
            if not step.isdigit() or int(step) < 1:
                raise Untranslatable(f"{name} field {text!r}: step {step!r} must be a whole number of at least 1")
        if rng == "*":
            start, end = low, high
        elif "-" in rng:
            first, _, last = rng.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise Untranslatable(f"{name} field {text!r}: range {rng} goes backwards")
        else:
            start = end = number(rng)
            if slash:
                raise Untranslatable(f"{name} field {text!r}: a step needs a range or * ({rng}-{high}/{step}?)")
        values.update(range(start, end + 1, int(step) if slash else 1))
    if name == "day of week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def parse_schedule(fields):
    """(key, chain name) for five cron fields; key is equal for schedules that fire at the same times."""
    sets = [parse_field(text, field) for text, field in zip(fields, FIELDS)]
    # Cron's day rule: when both day fields are restricted, either matching is enough.
    key = tuple(sets) + (fields[2].startswith("*"), fields[4].startswith("*"))
    return key, chain_name(fields)


def chain_name(fields):
    minute, hour, dom, month, dow = [f.lower() for f in fields]
    for expansion, name in MACROS.values():
        if fields == expansion.split():
            return name

    def num(text):
        return text.isdigit()

    hhmm = f"{int(hour):02d}{int(minute):02d}" if num(minute) and num(hour) else None
    if num(minute) and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        return f"cron_hourly_{int(minute):02d}"
    if hhmm and (dom, month, dow) == ("*", "*", "*"):
        return f"cron_daily_{hhmm}"
    if hhmm and (dom, month) == ("*", "*") and (num(dow) or dow in DAYS):
        return f"cron_weekly_{DAY_NAMES[int(dow)] if num(dow) else dow}_{hhmm}"
    if hhmm and (dom, month) == ("*", "*") and dow in ("1-5", "mon-fri"):
        return f"cron_weekdays_{hhmm}"
    if hhmm and (dom, month) == ("*", "*") and dow in ("0,6", "6,0", "6,7", "sat,sun", "sun,sat", "6-7", "sat-sun"):
        return f"cron_weekends_{hhmm}"
    if hhmm and num(dom) and (month, dow) == ("*", "*"):
        return f"cron_monthly_{int(dom):02d}_{hhmm}"
    if minute == "*" and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        return "cron_every_minute"
    every = re.match(r"^\*/(\d+)$", minute)
    if every and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        return f"cron_every_{int(every.group(1))}min"
    every = re.match(r"^\*/(\d+)$", hour)
    if every and num(minute) and (dom, month, dow) == ("*", "*", "*"):
        return f"cron_every_{int(every.group(1))}h" + (f"_{int(minute):02d}" if int(minute) else "")

    def slug(text):
        text = re.sub(r"^\*/", "every", text)
        return text.replace("*", "x").replace(",", ".").replace("/", "-every")

    return "cron_" + "_".join(slug(f) for f in (minute, hour, dom, month, dow))


# --------------------------------------------------------------------------------------------
# The command: cron's % rule, then a small POSIX-shell lexer (enough to split lists safely)


def unescape_percent(command):
    out, i = [], 0
    while i < len(command):
        if command.startswith("\\%", i):
            out.append("%")
            i += 2
            continue
        if command[i] == "%":
            raise Untranslatable("unescaped % (cron turns it into a newline and sends the rest to the "
                                 "command's stdin; write \\% for a literal %)")
        out.append(command[i])
        i += 1
    return "".join(out)


@dataclasses.dataclass
class Token:
    kind: str  # word | op | redir
    text: str  # as written (a redirect: operator and target)
    value: str = ""  # word: unquoted (approximately); op: the operator; redir: the operator
    fd: str = ""  # redir: the descriptor written before the operator
    target: str = ""  # redir: the target, unquoted


def _scan_quoted(s, i, close):
    """Index after the closing quote of a "..." or `...` that starts before i."""
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == close:
            return i + 1
        if close == '"' and c == "`":
            i = _scan_quoted(s, i + 1, "`")
            continue
        if close == '"' and s.startswith("$(", i):
            i = _scan_nested(s, i + 2, "(", ")")
            continue
        i += 1
    raise Untranslatable(f"unterminated {close}")


def _scan_nested(s, i, open_, close):
    """Index after the `close` that matches an `open_` before i ($(...), ${...})."""
    depth = 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = s.find("'", i + 1)
            if end < 0:
                raise Untranslatable("unterminated '")
            i = end + 1
            continue
        if c in "\"`":
            i = _scan_quoted(s, i + 1, c)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise Untranslatable(f"unterminated {'$(' if open_ == '(' else '${'}")


def _scan_word(s, i):
    start = i
    while i < len(s):
        c = s[i]
        if c in METACHARS:
            break
        if c == "\\":
            i += 2
        elif c == "'":
            end = s.find("'", i + 1)
            if end < 0:
                raise Untranslatable("unterminated '")
            i = end + 1
        elif c in "\"`":
            i = _scan_quoted(s, i + 1, c)
        elif s.startswith("$(", i):
            i = _scan_nested(s, i + 2, "(", ")")
        elif s.startswith("${", i):
            i = _scan_nested(s, i + 2, "{", "}")
        else:
            i += 1
    return min(i, len(s)), s[start:min(i, len(s))]


def unquote(raw):
    try:
        return " ".join(shlex.split(raw))
    except ValueError:
        return raw


def lex(s):
    """Tokens of a shell command line (comments dropped)."""
    tokens, i = [], 0
    while i < len(s):
        c = s[i]
        if c in " \t":
            i += 1
            continue
        if c == "#":
            break
        m = REDIRECT.match(s, i)
        if m:
            fd, op = m.groups()
            if op in ("<<", "<<-", "<<<"):
                raise Untranslatable(f"here-document ({op}) is not translatable: put the input in a file or a script")
            if op in ("<(", ">("):
                raise Untranslatable(f"process substitution ({op}...) is not translatable (bash only): use a script")
            j = m.end()
            while j < len(s) and s[j] in " \t":
                j += 1
            end, raw = _scan_word(s, j)
            if not raw:
                raise Untranslatable(f"redirect {fd}{op} has no target")
            tokens.append(Token("redir", s[i:end], op, fd, unquote(raw)))
            i = end
            continue
        op = next((o for o in OPERATORS if s.startswith(o, i)), None)
        if op:
            tokens.append(Token("op", op, op))
            i += len(op)
            continue
        i, raw = _scan_word(s, i)
        tokens.append(Token("word", raw, unquote(raw)))
    return tokens


UNTRANSLATABLE_OPS = {
    "||": "|| (run when the previous command failed) is not translatable: put the fallback in a script",
    "&": "& (run in the background) is not translatable: give the command its own line or chain",
    "|&": "|& (bash) is not translatable: write 2>&1 |",
    "(": "a ( ) subshell is not translatable: put the commands in a script",
    ")": "a ( ) subshell is not translatable: put the commands in a script",
    ";;": "case ... ;; is not translatable: put it in a script",
}


def split_list(text):
    """[(operator before it or None, [tokens])] for a command list joined by && and ;."""
    elements, current, op_before = [], [], None
    for tok in lex(text):
        if tok.kind == "op" and tok.value in UNTRANSLATABLE_OPS:
            raise Untranslatable(UNTRANSLATABLE_OPS[tok.value])
        if tok.kind == "op" and tok.value in (";", "&&"):
            if not current:
                raise Untranslatable(f"{tok.value} without a command before it")
            if current[-1].kind == "op":
                raise Untranslatable("| without a command after it")
            elements.append((op_before, current))
            current, op_before = [], tok.value
            continue
        if tok.kind == "op":  # |
            if not current or current[-1].kind == "op":
                raise Untranslatable("| without a command before it")
        current.append(tok)
    if current:
        if current[-1].kind == "op":
            raise Untranslatable("| without a command after it")
        elements.append((op_before, current))
    elif op_before == "&&":
        raise Untranslatable("&& without a command after it")
    if not elements:
        raise Untranslatable("no command")
    for _, tokens in elements:
        at_start = True
        for tok in tokens:
            if at_start and tok.kind == "word" and tok.text in COMPOUND_WORDS:
                raise Untranslatable(f"shell compound command ({tok.text} ...) is not translatable: put it in a script")
            if tok.kind == "word" and not ASSIGNMENT_WORD.match(tok.text):
                at_start = False
            if tok.kind == "op":
                at_start = True
    return elements


# --------------------------------------------------------------------------------------------
# One element of a list: what it is, what it runs, what to call it


def matches_wrapper(word, wrappers):
    base = os.path.basename(word)
    stem = os.path.splitext(base)[0]
    return any(fnmatch.fnmatchcase(base, w) or fnmatch.fnmatchcase(stem, w) for w in wrappers)


def is_log_path(path):
    return bool(re.search(r"\.(log|out|err)$|(^|/)logs?/|^/var/log/", path))


def script_word(words):
    """The word naming the program a command runs: past assignments, prefix commands (nice, timeout,
    flock, env...) and interpreters (python3 x.py, python -m pkg.mod). Returns (word, is_module)."""
    k = 0
    while k < len(words) and ASSIGNMENT_WORD.match(words[k]):
        k += 1
    while k < len(words):
        base = os.path.basename(words[k])
        if base in PREFIX_COMMANDS:
            with_value, positional = PREFIX_COMMANDS[base]
            k += 1
            while k < len(words) and (words[k].startswith("-") or (base == "env" and ASSIGNMENT_WORD.match(words[k]))):
                k += 2 if words[k] in with_value else 1
            k += positional
            continue
        if INTERPRETER.match(base):
            j = k + 1
            while j < len(words) and words[j].startswith("-"):
                if words[j] in ("-m", "-jar") and j + 1 < len(words):
                    return words[j + 1], words[j] == "-m"
                if words[j] in ("-c", "-e"):
                    return words[k], False
                j += 1
            return (words[j], False) if j < len(words) else (words[k], False)
        return words[k], False
    return (words[-1] if words else "job"), False


def entry_name(word, is_module=False):
    base = word.rsplit(".", 1)[-1] if is_module else os.path.basename(word.rstrip("/"))
    if not is_module:
        base = re.sub(r"\.[A-Za-z0-9]{1,4}$", "", base)
    base = re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_")
    return base if base and NAME_PATTERN.match(base) else "job"


@dataclasses.dataclass
class Step:
    kind: str  # run | drop (environment set-up) | state (prefix for later commands) | env | guard (test)
    tokens: list = dataclasses.field(default_factory=list)
    comments: list = dataclasses.field(default_factory=list)
    environment: dict = dataclasses.field(default_factory=dict)
    text: str = ""  # state: the command to put in front of later ones


def words_of(tokens):
    return [t for t in tokens if t.kind == "word"]


def classify(tokens, wrappers):
    """What one element of a command list is (see Step)."""
    words = words_of(tokens)
    k = 0
    while k < len(words) and ASSIGNMENT_WORD.match(words[k].text):
        k += 1
    joined = " ".join(t.text for t in tokens)
    if k == len(words):  # X=1 Y=2 on their own
        return _assignments(words, joined)
    prog = words[k].value
    base = os.path.basename(prog)
    if prog in ("source", ".") and k == 0:
        return Step("drop", comments=[f"`{joined}` dropped: the image is the environment"])
    if prog in ("[", "test") and k == 0 and not any(t.kind != "word" for t in tokens):
        return Step("guard", text=joined)
    if prog in STATE_COMMANDS and k == 0:
        if prog == "export":
            simple = _assignments(words[1:], joined)
            if simple.kind == "env" and all("=" in w.text for w in words[1:]):
                return simple
        note = f"`{joined}` put in front of the command: each entry runs in its own container"
        if prog in ("cd", "pushd") and len(words) > 1 and not re.match(r"^(/data|/tmp)(/|$)", words[1].value):
            note += f"; {words[1].value} must exist in the image (or use a folder under /data)"
        return Step("state", text=joined, comments=[note])
    # A wrapper: `cron_setup.sh x.py --y`, or `sh ~/bin/cron_setup.sh x.py`.
    w = k
    if base in SHELLS:
        w = k + 1
        while w < len(words) and words[w].value.startswith("-"):
            w += 1
    if w < len(words) and matches_wrapper(words[w].value, wrappers):
        wrapper = words[w].value
        rest = w + 1
        while rest < len(words) and words[rest].value.startswith("-"):
            rest += 1
        note = f"wrapper {wrapper} dropped: the image is the environment"
        if rest == len(words):
            return Step("drop", comments=[note])
        dropped = {id(t) for t in words[k:rest]}
        kept = [t for t in tokens if id(t) not in dropped]
        inner = words[rest]
        if rest == len(words) - 1 and re.search(r"\s", inner.value) and inner.text[0] in "'\"" \
                and all(t.kind != "op" for t in tokens):
            # `cron_setup.sh "reduce.py --night x"`: the wrapper was given the command as one string.
            inner_elements = split_list(inner.value)
            if len(inner_elements) != 1:
                raise Untranslatable(f"wrapper {wrapper} runs a command list in one string: split it by hand")
            kept = words[:k] + inner_elements[0][1] + [t for t in tokens if t.kind == "redir"]
        return Step("run", tokens=kept, comments=[note])
    return Step("run", tokens=list(tokens))


def _assignments(words, joined):
    env, comments = {}, []
    for w in words:
        m = ASSIGNMENT_WORD.match(w.text)
        name = m.group(1) if m else w.text
        value = unquote(m.group(2)) if m else ""
        if name in NOT_CARRIED:
            comments.append(f"`{w.text}` dropped: {NOT_CARRIED[name]}")
            continue
        if not m or re.search(r"[$`]", m.group(2)) or m.group(2).startswith("~"):
            return Step("state", text=joined,
                        comments=[f"`{joined}` put in front of the command: each entry runs in its own container"])
        env[name] = value
    if env:
        comments.append(f"`{joined}` became environment")
    return Step("env", environment=env, comments=comments)


def login_shell_string(tokens):
    """For `bash -lc 'a && b'` (and sh -c '...'): (the string, whether it is a login shell); else None."""
    if any(t.kind != "word" for t in tokens):
        return None
    words = [t.value for t in tokens]
    if not words or os.path.basename(words[0]) not in SHELLS or len(words) < 3:
        return None
    login, i = False, 1
    while i < len(words) - 1 and words[i].startswith("-"):
        opt = words[i]
        login = login or opt == "--login" or (not opt.startswith("--") and "l" in opt)
        if not opt.startswith("--") and "c" in opt:
            if i + 2 == len(words):
                return words[i + 1], login
            return None
        i += 1
    return None


def expand_elements(text, wrappers, depth=0):
    """[(operator before, Step)] with login-shell strings (`bash -lc '...'`) unfolded."""
    out = []
    for op, tokens in split_list(text):
        shell = login_shell_string(tokens) if depth < 3 else None
        if shell:
            inner, login = shell
            sub = expand_elements(inner, wrappers, depth + 1)
            what = "login shell" if login else "shell"
            note = f"`{' '.join(t.text for t in tokens[:-1])}` ({what}) unwrapped: the image is the environment"
            sub[0][1].comments.insert(0, note)
            sub[0] = (op, sub[0][1])
            out += sub
        else:
            out.append((op, classify(tokens, wrappers)))
    return out


def finish_command(tokens, comments):
    """The command text, with redirects reviewed (see the module's docstring)."""
    parts, stdout_null, stderr_null = [], False, False
    for t in tokens:
        if t.kind != "redir":
            parts.append(t.text)
            continue
        out = t.value in (">", ">>", ">|") and t.fd in ("", "1")
        err = t.value in (">", ">>", ">|") and t.fd == "2"
        both = t.value in ("&>", "&>>")
        null = t.target == "/dev/null"
        if both and null:
            parts.append(f">{t.target} 2>&1")
            comments.append(f"`{t.text}` written as `>/dev/null 2>&1` (what it means in bash; sh would "
                            "run the command in the background)")
            stdout_null = stderr_null = True
        elif (out or err or both) and null:
            parts.append(t.text)
            stdout_null = stdout_null or out
            stderr_null = stderr_null or err
        elif (out or err or both) and is_log_path(t.target):
            comments.append(f"`{t.text}` removed: the step's container is discarded, its output goes to the task log")
        elif (out or err or both) and re.match(r"^(/data/|/dev/)", t.target):
            parts.append(f">{t.target} 2>&1" if both else t.text)
        elif both:
            parts.append(f"{'>>' if t.value == '&>>' else '>'}{t.text[len(t.value):].strip()} 2>&1")
            comments.append(f"`{t.text}` written as `>FILE 2>&1`; {t.target} is inside the step's container, "
                            "discarded after the task: only what is under /data outlives it")
        elif out or err:
            parts.append(t.text)
            comments.append(f"`{t.text}`: {t.target} is inside the step's container, discarded after the task: "
                            "only what is under /data outlives it")
        else:
            parts.append(t.text)
    if stdout_null:
        comments.append("stdout dropped: only failures alert")
    if stderr_null:
        comments.append(f"stderr dropped{' too' if stdout_null else ''}: a failed task's log will not say why")
    return " ".join(parts)


def step_text(guard):
    return re.sub(r"\s*(&&|;)\s*$", "", guard)


def path_comment(word):
    if "/" in word and not word.startswith(SYSTEM_DIRS):
        name = os.path.basename(word)
        return (f"{word} is not in the image: copy it into images/astro/scripts/ (executable, with a #! line) "
                f"and call it by name ({name})")
    return None


# --------------------------------------------------------------------------------------------
# The crontab


def import_crontab(text, source="crontab", wrappers=(), reserved_names=(), reserved_chains=()):
    """Translate a user crontab. Nothing raises for a bad line: each becomes a Problem and the line
    is left out. `reserved_names`/`reserved_chains` are names already taken (in the registry the
    result is merged into); new names never reuse them."""
    wrappers = tuple(DEFAULT_WRAPPERS) + tuple(wrappers)
    taken_names = set(reserved_names)
    taken_chains = set(reserved_chains)
    chains_by_key, chains = {}, {}
    entries, problems, notes = [], [], []
    env, email = {}, None
    tz = None  # (name=value, line number) of a CRON_TZ/TZ that is not UTC

    def unique(name, taken):
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        return candidate

    for lineno, raw in enumerate(text.split("\n"), 1):  # cron splits at \n only
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue

        def problem(reason, lineno=lineno, line=line):
            problems.append(Problem(source, lineno, reason, line))

        assign = ASSIGNMENT_LINE.match(line)
        if assign:
            name, value = assign.group(1), assign.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            if name == "MAILTO":
                addresses = [a for a in re.split(r"[,\s]+", value) if a]
                local = [a for a in addresses if "@" not in a]
                if local:
                    email = None
                    problem(f"MAILTO: {', '.join(local)} is not an email address (cron mailed a local user); "
                            "write full addresses")
                else:
                    email = addresses
            elif name in ("CRON_TZ", "TZ"):
                if value.lower() in UTC_ZONES:
                    tz = None
                    notes.append(f"{source}:{lineno}: {name}={value} not carried: chains run in UTC")
                else:
                    tz = (f"{name}={value}", lineno)
                    problem(f"{name}={value}: chains run in UTC; rewrite the schedules in UTC and remove this line")
            elif name in NOT_CARRIED:
                notes.append(f"{source}:{lineno}: {name}={value} not carried: {NOT_CARRIED[name]}")
            else:
                env[name] = value
            continue

        try:
            if line.startswith("@"):
                macro, command = (line.split(None, 1) + [""])[:2]
                macro = macro.lower()
                if macro == "@reboot":
                    raise Untranslatable("@reboot runs when cron starts, not on a schedule: no chain can run it")
                if macro not in MACROS:
                    raise Untranslatable(f"unknown macro {macro} (one of {', '.join(MACROS)}, @reboot)")
                fields, schedule = MACROS[macro][0].split(), macro
                key, cname = parse_schedule(fields)
                cname = MACROS[macro][1]
            else:
                parts = line.split(None, 5)
                if len(parts) < 6:
                    raise Untranslatable("not a cron job (5 time fields and a command) nor a VAR=value line")
                fields, command = parts[:5], parts[5]
                key, cname = parse_schedule(fields)
                schedule = " ".join(fields)
            command = command.strip()
            if not command:
                raise Untranslatable("no command")
            if tz:
                raise Untranslatable(f"scheduled in {tz[0]} (line {tz[1]}); chains run in UTC")
            steps = expand_elements(unescape_percent(command), wrappers)
            line_entries = _entries_of_line(steps, lineno, line, env, email)
        except Untranslatable as exc:
            problem(str(exc))
            continue

        if key not in chains_by_key:
            chain = Chain(unique(cname, taken_chains), schedule, [])
            chains_by_key[key] = chain
            chains[chain.name] = chain
        chain = chains_by_key[key]
        chain.lines.append(lineno)
        previous = {}
        for entry in line_entries:
            previous[id(entry)] = entry
            entry.name = unique(entry.name, taken_names)
            entry.chain = chain.name
            entries.append(entry)
        for entry in line_entries:
            if entry.after is not None:
                entry.after = previous[entry.after].name
    return ImportResult(source, entries, chains, problems, notes)


def _entries_of_line(steps, lineno, line, env, email):
    """Entries for one crontab line's steps; entry.after holds id() of the previous entry here."""
    entries, pending_comments = [], []
    prefixes, line_env = [], {}
    previous, ops, guard = None, [], None
    for op, step in steps:
        if guard and step.kind != "run":
            raise Untranslatable(f"the test `{guard}` guards a set-up step: put it in a script")
        if guard:
            # `[ -f x ] && cmd`: the test stays in front of the command it guards (one task).
            guard += f" {op} " if op == "&&" else f"{op} "
        elif op:
            ops.append(op)
        if step.kind == "guard":
            guard = step.text
            continue
        if step.kind != "run":
            pending_comments += step.comments
            if step.kind == "state":
                prefixes.append(step.text)
            line_env.update(step.environment)
            continue
        comments = pending_comments + step.comments
        pending_comments = []
        words = [t.value for t in words_of(step.tokens)]
        word, is_module = script_word(words)
        hint = None if is_module else path_comment(word)
        command = finish_command(step.tokens, comments)
        if guard:
            comments.append(f"the test `{step_text(guard)}` stays in front of the command: when it is false the task "
                            "fails (cron stayed silent)")
            command, guard = guard + command, None
        if re.search(r"(\$\(|`)\s*date\s[^)`]*(-d\b|--date)", command):
            comments.append("tip: the registry gives the night being processed as {night} (and $DOWNLINK_NIGHT)")
        if prefixes:
            command = " && ".join(prefixes + [command])
        if hint:
            comments.append(hint)
        environment = {**env, **line_env}
        for value in [command, *environment.values()]:
            if JINJA.search(value):
                raise Untranslatable("{{, {% or {# in the command or its environment: Airflow renders "
                                     "commands as Jinja templates; put it in a script")
        try:
            shlex.split(command)
        except ValueError as exc:
            raise Untranslatable(f"the command cannot be parsed ({exc})") from exc
        entry = Entry(entry_name(word, is_module), command, "", lineno, line, environment=environment,
                      email=list(email) if email is not None else None, comments=comments)
        if previous is not None:
            entry.after = id(previous)
            # Success only when every operator since the previous entry was && (dropped set-up
            # steps are taken to succeed); any ; means cron ran this whatever happened before.
            entry.when = "success" if all(o == "&&" for o in ops) else "always"
        entries.append(entry)
        previous, ops = entry, []
    if guard:
        raise Untranslatable(f"the test `{step_text(guard)}` guards nothing")
    if not entries:
        raise Untranslatable("nothing to run once the environment set-up is dropped")
    entries[-1].comments += pending_comments  # set-up after the last command: no effect
    return entries


# --------------------------------------------------------------------------------------------
# Merging into a registry file: append text, keep everything already there


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


# --------------------------------------------------------------------------------------------
# Command line


def add_parser(subparsers):
    p = subparsers.add_parser(
        "import-crontab", help="turn a crontab into registry entries",
        description="Translate a user crontab into script-registry entries: YAML on stdout, or merged "
                    "into a registry with --into. Any line that cannot be translated is printed as "
                    "FILE:LINE: reason: line, and then nothing is written (exit 1) unless --skip-unsupported.")
    p.add_argument("crontab", metavar="FILE", help="the crontab (as `crontab -l` prints it); - for stdin")
    p.add_argument("--into", metavar="REGISTRY",
                   help="append the chains and scripts to this registry (e.g. dags/registry.yaml), keeping its "
                        "text; the result is checked before it is written, atomically")
    p.add_argument("--wrapper", metavar="NAME", action="append", default=[],
                   help="another environment set-up command or wrapper to drop (glob; repeatable); always "
                        "dropped: " + ", ".join(DEFAULT_WRAPPERS) + ", source/.")
    p.add_argument("--skip-unsupported", action="store_true",
                   help="import what can be imported; the skipped lines are listed in comments at the top")
    p.set_defaults(run=run)
    return p


def run(args, stdout=None, stderr=None):
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr

    def say(*lines, to=stderr):
        for line in lines:
            print(line, file=to)

    try:
        if args.crontab == "-":
            text, source = sys.stdin.read(), "stdin"
        else:
            with open(args.crontab, encoding="utf-8") as fh:
                text = fh.read()
            source = args.crontab
    except (OSError, UnicodeDecodeError) as exc:
        say(f"import-crontab: {args.crontab}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        return 2

    existing_text, existing = None, {}
    if args.into:
        try:
            with open(args.into, encoding="utf-8") as fh:
                existing_text = fh.read()
            existing = yaml.safe_load(existing_text) or {}
        except FileNotFoundError:
            say(f"import-crontab: {args.into}: no such registry (without --into the YAML goes to stdout)")
            return 2
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            say(f"import-crontab: {args.into}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            return 1
        if not isinstance(existing, dict):
            say(f"import-crontab: {args.into}: not a registry (a mapping with chains: and scripts:)")
            return 1

    names, chains = registry_names(existing)
    result = import_crontab(text, source, wrappers=args.wrapper, reserved_names=names, reserved_chains=chains)
    if result.problems:
        say(*map(str, result.problems))
        if not args.skip_unsupported:
            say(f"import-crontab: {len(result.problems)} line(s) cannot be imported; nothing written. "
                "Fix them, or import the rest with --skip-unsupported.")
            return 1
        say(f"import-crontab: skipped {len(result.problems)} line(s), listed at the top of the output")
    if not result.entries:
        say(f"import-crontab: {source}: no cron job to import; nothing written")
        return 1

    if not args.into:
        output = result.to_yaml()
        problems = validate(yaml.safe_load(output), source)
        if problems:
            say(*problems, "import-crontab: the registry rejects the translation (a bug in the importer); "
                           "nothing written")
            return 1
        stdout.write(output)
        return 0

    try:
        merged = merge_text(existing_text, result, args.into)
    except MergeError as exc:
        say(f"import-crontab: {args.into}: {exc}; nothing written")
        return 1
    before = set(validate(existing, args.into))
    after = validate(yaml.safe_load(merged), args.into)
    new = [p for p in after if p not in before]
    if before:
        say(f"import-crontab: {args.into} already had {len(before)} problem(s) (`make check`); they are not "
            "the import's")
    if new:
        say(*new, f"import-crontab: {args.into}: the merged registry has problems; nothing written")
        return 1
    try:
        write_atomic(args.into, merged)
    except OSError as exc:
        say(f"import-crontab: {args.into}: cannot write: {exc.strerror or exc}; nothing written")
        return 1
    say(f"{args.into}: added {len(result.entries)} script(s) in {len(result.chains)} chain(s): "
        f"{', '.join(result.chains)}. Check with `make check`, then `make deploy`.", to=stdout)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m downlink_airflow.crontab_import")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
