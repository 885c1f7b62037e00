"""Who is running a step: the DAG run id and code version recorded with every product."""
from downlink import __version__, settings


def run_id():
    return settings.get("run_id")


def code_version():
    return f"downlink {__version__}"
