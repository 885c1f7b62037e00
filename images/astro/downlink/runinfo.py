"""Who is running a step: the DAG run id and code version recorded with every product."""
import os

from downlink import __version__


def run_id():
    return os.environ.get("DOWNLINK_RUN_ID", "manual")


def code_version():
    return f"downlink {__version__}"
