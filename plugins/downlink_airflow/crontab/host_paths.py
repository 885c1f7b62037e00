"""Host paths an imported line uses (in its variables and its command's arguments): the importer
lists them as suggested `mounts:` in its report. Only suggested, never written as live mounts: the
admin decides what goes on DOWNLINK_ALLOWED_MOUNTS, and a path under the program's own folder is
a script to copy into the image, not data to mount."""
import os
import re
import shlex

# Paths of the image itself or of the kernel: nothing to mount.
NOT_HOST_DATA = ("/usr/", "/bin/", "/sbin/", "/lib", "/dev/", "/proc/", "/sys/", "/tmp", "/etc/", "/opt/conda")
PATH_WORD = re.compile(r"^/[^\s$`*?]*$")


def _candidates(text):
    """Absolute paths in one word: the word itself, or each part of `--opt=/x` and `A:/b:/c`."""
    for part in re.split(r"[=:,]", text):
        part = part.strip()
        if PATH_WORD.match(part) and part != "/":
            yield part


def _folder(path):
    """A file's folder (a name with an extension is taken for a file), else the path itself."""
    path = os.path.normpath(path)
    return os.path.dirname(path) if os.path.splitext(os.path.basename(path))[1] else path


def paths_of(command, environment, program=None):
    """The host folders an entry refers to, sorted, without the program's own path."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    found = set()
    for word in [*words, *environment.values()]:
        for path in _candidates(word):
            if path == program or path.startswith(NOT_HOST_DATA) or ".." in path.split("/"):
                continue
            found.add(_folder(path))
    return sorted(p for p in found if p != "/")
