"""`import-crontab --scripts DIR`: the scripts a crontab's commands name, brought into the image.

Each entry's program word (`/home/obs/bin/reduce.py`, `~/bin/x.sh`, or an interpreter's first
argument: `python3 /home/obs/bin/x.py`) is looked up in DIR by its basename. Found: it is copied
into images/astro/scripts/ (its mode kept; the image's Dockerfile makes it executable), which is
on the image's PATH at /opt/downlink/scripts, and the command calls it by name (`reduce.py
--night ...`). An interpreter in front is dropped when the script has a `#!` line; without one the
interpreter stays and is given the script's path in the image. Not found: a word with a folder
(outside /usr/bin, /bin, ...) is listed with its crontab line; a bare name that DIR does not have
is taken to be a program of the image (`make check` says if it is not).

plan() is pure (it reads DIR and the destination, writes nothing); copy() writes the files, and
the command line runs it only once the registry has been accepted.
"""
import dataclasses
import filecmp
import os
import re
import shutil

from downlink_airflow.crontab.command import INTERPRETER, SYSTEM_DIRS

IMAGE_SCRIPTS = "/opt/downlink/scripts"  # images/astro/scripts/ in the image, on its PATH


@dataclasses.dataclass
class ScriptsPlan:
    copies: list = dataclasses.field(default_factory=list)  # (source file, destination file)
    same: list = dataclasses.field(default_factory=list)  # destination already holds this very file
    conflicts: list = dataclasses.field(default_factory=list)  # (lineno, source, destination)
    missing: list = dataclasses.field(default_factory=list)  # (lineno, word)

    def notes(self, into_label, scripts_label):
        def shown(src):
            return os.path.join(scripts_label, os.path.basename(src))

        out = [f"Copied into {into_label}: {os.path.basename(dst)} (from {shown(src)})" for src, dst in self.copies]
        out += [f"Already in {into_label}, the same file: {os.path.basename(dst)}" for dst in self.same]
        out += [f"line {n}: NOT copied: {into_label}{os.path.basename(dst)} exists and differs from {shown(src)}; "
                "the command keeps its host path (rename one, or compare them)" for n, src, dst in self.conflicts]
        out += [f"line {n}: script not found in the scripts folder: {word} (copy it into {into_label} by hand)"
                for n, word in self.missing]
        return out


def has_shebang(path):
    with open(path, "rb") as fh:
        return fh.read(2) == b"#!"


def rewrite(command, word, name, keep_interpreter):
    """`command` calling the script `word` by `name`: the first occurrence of the word (bare,
    quoted or after an interpreter and its options) replaced; the interpreter dropped unless
    keep_interpreter. Unchanged when the word is not found as a whole word."""
    quoted = "|".join(re.escape(q + word + q) for q in ("", "'", '"'))
    interp = r"(?:\S*/)?(?:" + INTERPRETER.pattern.strip("^$") + r")(?:\s+-\S+)*\s+"
    pattern = re.compile(r"(?P<lead>^|(?<=[\s;&|(]))(?P<interp>" + interp + r")?(?P<word>" + quoted + r")(?=$|[\s;&|)<>])")
    match = pattern.search(command)
    if not match:
        return command
    interpreter = match.group("interp") or ""
    if interpreter and keep_interpreter:
        new = interpreter + f"{IMAGE_SCRIPTS}/{name}"
    else:
        new = name
    return command[:match.start("interp") if interpreter else match.start("word")] + new + command[match.end("word"):]


def plan(entries, scripts_dir, into_dir):
    """What --scripts does to `entries` (rewriting their commands in place) and which files to copy."""
    result, planned = ScriptsPlan(), {}
    for e in entries:
        word = e.program
        if not word:
            continue
        name = os.path.basename(word.rstrip("/"))
        source = os.path.join(scripts_dir, name)
        if not name or not os.path.isfile(source):
            if "/" in word and not word.startswith(SYSTEM_DIRS):
                result.missing.append((e.lineno, word))
            continue
        dest = os.path.join(into_dir, name)
        if dest not in planned:  # the first entry naming this script decides; later ones follow
            if os.path.exists(dest) and not filecmp.cmp(source, dest, shallow=False):
                result.conflicts.append((e.lineno, source, dest))
                continue
            if os.path.exists(dest):
                result.same.append(dest)
            else:
                result.copies.append((source, dest))
            planned[dest] = source
        shebang = has_shebang(source)
        before = e.command
        e.command = rewrite(e.command, word, name, keep_interpreter=not shebang)
        if e.command != before:
            e.program = name if shebang else f"{IMAGE_SCRIPTS}/{name}"  # the image's, not a host path
            e.comments = [c for c in e.comments if not c.startswith(f"{word} is not in the image")]
            e.comments.append(f"{word}: copied into the image's scripts as {name}, called by name" +
                              ("" if shebang else f" (no #! line: run by its interpreter as {IMAGE_SCRIPTS}/{name})"))
    return result


def copy(plan_):
    """Copy the planned files, keeping their mode (and making them executable: the image runs them)."""
    for src, dst in plan_.copies:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst + ".tmp")
        mode = os.stat(dst + ".tmp").st_mode
        os.chmod(dst + ".tmp", mode | 0o111)
        os.replace(dst + ".tmp", dst)
