"""The steps' settings: the one place the step side reads DOWNLINK_* variables, each with its one
default (docs/configuration.md lists them; a unit test checks the two agree). Steps take their
thresholds as command-line flags whose defaults come from here, so a step run by hand says what
it uses (`downlink health --help`).

Stdlib only (the image has no pydantic). An empty value counts as unset, as compose's
`${X:-default}` did: the stack passes .env through unchanged.
"""
import os
from dataclasses import dataclass, field, fields

from downlink import StepError


def _text(text, name):
    return text


def _number(text, name):
    try:
        return float(text)
    except ValueError:
        raise StepError(f"{name}={text!r} is not a valid float") from None


def _integer(text, name):
    try:
        return int(text)
    except ValueError:
        raise StepError(f"{name}={text!r} is not a valid int") from None


def setting(env, default, doc, parse=_text):
    """A field read from the environment variable `env`; `default` is its text when unset."""
    return field(default=parse(default, env), metadata={"env": env, "default": default, "doc": doc, "parse": parse})


@dataclass(frozen=True)
class Settings:
    data_root: str = setting("DOWNLINK_DATA", "/data", "the data volume inside step containers")
    source: str = setting("DOWNLINK_SOURCE", "http://archive-server:8080", "where nights are downloaded from: a base URL or a directory")
    archive_dsn: str = setting("DOWNLINK_ARCHIVE_DSN", "", "the archive database (postgresql://...)")
    min_free_gb: float = setting("DOWNLINK_MIN_FREE_GB", "1", "diagnostics fail below this much free space on the data, archive and database volumes",
                                 _number)
    freshness_hours: float = setting("DOWNLINK_FRESHNESS_HOURS", "36", "diagnostics fail when no new frame was indexed for this long (0: off)",
                                     _number)
    # Kept as written ('10k'): download parses it and quotes it in its messages.
    min_transfer_rate: str = setting("DOWNLINK_MIN_TRANSFER_RATE", "10k",
                                     "bytes/s (k, M): a download slower than this after the grace period is stopped, kept and resumed by the "
                                     "next run (0: no minimum)")
    transfer_grace_seconds: float = setting("DOWNLINK_TRANSFER_GRACE_SECONDS", "60", "how long a transfer may run before the minimum rate applies",
                                            _number)
    combine_mem_mb: float = setting("DOWNLINK_COMBINE_MEM_MB", "512", "memory limit of each combine of the calibrate step (MB)", _number)
    qc_min_sources: int = setting("DOWNLINK_QC_MIN_SOURCES", "5", "a frame passes QC with at least this many sources", _integer)
    qc_max_fwhm_arcsec: float = setting("DOWNLINK_QC_MAX_FWHM_ARCSEC", "3.0", "... and a seeing FWHM of at most this (arcsec)", _number)
    qc_max_sky: float = setting("DOWNLINK_QC_MAX_SKY", "10000", "... and a sky background of at most this (e-/pixel)", _number)
    # Housekeeping (downlink housekeeping): how long each prunable area keeps what it may lose.
    keep_scratch_days: float = setting("DOWNLINK_KEEP_SCRATCH_DAYS", "14", "housekeeping deletes a finished run's work/<dag>/<run>/ scratch "
                                       "after this many days without a change", _number)
    keep_staging_days: float = setting("DOWNLINK_KEEP_STAGING_DAYS", "30", "housekeeping deletes staged files older than this that are "
                                       "archived (same name and sha256 in raw/); an unarchived one is never deleted", _number)
    keep_quarantine_days: float = setting("DOWNLINK_KEEP_QUARANTINE_DAYS", "90", "housekeeping deletes quarantined bytes older than this; "
                                          "the reason record and the database row are kept, marked pruned_at", _number)
    run_id: str = setting("DOWNLINK_RUN_ID", "manual", "the DAG run a product was made by (set by Airflow for each step)")
    version: str = setting("DOWNLINK_VERSION", "dev", "the code version recorded with products (set at image build: the git tag)")

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        return cls(**{f.name: get(f.name, env) for f in fields(cls)})


FIELDS = {f.name: f for f in fields(Settings)}


def current():
    """The settings of this process's environment (read each time: tests change it)."""
    return Settings.from_env()


def get(name, env=None):
    """One setting (a field name of Settings), read from the environment now. Only that one is
    parsed: a bad value of another setting fails the step that uses it, not every step."""
    env = os.environ if env is None else env
    f = FIELDS[name]
    return f.metadata["parse"](env.get(f.metadata["env"]) or f.metadata["default"], f.metadata["env"])


def variables():
    """{variable: (default text, meaning)} of every setting above (docs/configuration.md)."""
    return {f.metadata["env"]: (f.metadata["default"], f.metadata["doc"]) for f in fields(Settings)}
