"""Registering a secret's value with Airflow's secrets masker, so that it is redacted (***) in
the task log, including the step container's output that DockerOperator relays line by line."""


def _mask_secret():
    # airflow.sdk.log.mask_secret masks in the task process *and* tells the supervisor, which
    # writes the log; the older module only masks locally (kept as a fallback).
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older Task SDK
        from airflow.sdk.execution_time.secrets_masker import mask_secret
    return mask_secret


def parts(value):
    """What to register for a file's text: the whole value, without its trailing newline, and
    each of its lines (a key file or a multi-line token is logged one line at a time)."""
    whole = value.rstrip("\n")
    found = [whole] if whole.strip() else []
    if "\n" in whole:
        found += [line.strip() for line in whole.splitlines() if line.strip()]
    return list(dict.fromkeys(found))


def mask(value):
    mask_secret = _mask_secret()
    for part in parts(value):
        mask_secret(part)
