"""One crontab line's command list turned into entries: what each element is, what it runs, what
to call it, and its redirects reviewed (see the package docstring)."""
import dataclasses
import fnmatch
import os
import re
import shlex

from downlink_airflow.crontab.result import Entry, Untranslatable
from downlink_airflow.crontab.shell import ASSIGNMENT_WORD, split_list, unquote

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
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
SYSTEM_DIRS = ("/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/")
JINJA = re.compile(r"\{\{|\{%|\{#")


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



def entries_of_line(steps, lineno, line, env, email):
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
                      email=list(email) if email is not None else None, comments=comments,
                      program=None if is_module else word)
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
