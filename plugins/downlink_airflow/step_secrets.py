"""Secrets a registry entry names (`secrets:`): files of the secrets folder (DOWNLINK_SECRETS_DIR,
outside git), each mounted read-only at /run/secrets/NAME in that entry's step only.

Pure Python: `make check` calls `problems_of` (missing file, readable by others), the step
operator (steps.py) reads each file to register its value with Airflow's secrets masker before
the container starts, so the value is redacted wherever it appears in the task's log.
"""
import os
import re
import stat

# Two users read a secret: the step (astro image, uid 1000) where it is mounted, and the Airflow
# task (uid 50000, group 0) that masks its value. So a secret is owned by uid 1000, may be read
# by group 0 (root's group on the host: no ordinary account), and nobody else: mode 0640,
# folder 0750, `chown -R 1000:0` (0600 would shut Airflow out, and the task would fail before
# its step starts). Anything for others, or for another group, is refused.
STEP_UID = 1000
AIRFLOW_GID = 0
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
TARGET_DIR = "/run/secrets"


def check_name(name):
    """The name as given; ValueError unless it is a plain file name (no '/', no leading '.')."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"{name!r} is not a secret name (letters, digits, _ . - ; no '/')")
    return name


def host_path(folder, name):
    return os.path.join(folder, check_name(name))


def target(name):
    return f"{TARGET_DIR}/{check_name(name)}"


def _open_to_others(info):
    """Why this file or folder's mode lets in more than its owner and group 0 ('' if it does not)."""
    mode = stat.S_IMODE(info.st_mode)
    if mode & stat.S_IRWXO:
        return f"open to others (mode {mode:o})"
    if mode & stat.S_IRWXG and info.st_gid != AIRFLOW_GID:
        return f"open to group {info.st_gid} (mode {mode:o}; only group {AIRFLOW_GID}, Airflow's, may read)"
    if mode & stat.S_IWGRP:
        return f"writable by its group (mode {mode:o})"
    return ""


def problems_of(folder, name):
    """What is wrong with secret `name` in `folder` (empty list: usable). Only checked where the
    folder is visible (`make check` mounts it; a DAG parse does not need it)."""
    if not folder:
        return ["DOWNLINK_SECRETS_DIR is not set (make env sets it to the checkout's secrets/)"]
    problems = []
    try:
        why = _open_to_others(os.stat(folder))
        if why:
            problems.append(f"the secrets folder {folder} is {why}: chown {STEP_UID}:{AIRFLOW_GID} and chmod 750 it")
    except OSError as exc:
        return [f"the secrets folder {folder}: {exc.strerror}"]
    path = host_path(folder, name)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return problems + [f"{path} does not exist: put the secret there (chown {STEP_UID}:{AIRFLOW_GID}, chmod 640)"]
    except OSError as exc:
        return problems + [f"{path}: {exc.strerror}"]
    if not stat.S_ISREG(info.st_mode):
        return problems + [f"{path} is not a file"]
    why = _open_to_others(info)
    if why:
        problems.append(f"{path} is {why}: chown {STEP_UID}:{AIRFLOW_GID} and chmod 640 it")
    return problems

