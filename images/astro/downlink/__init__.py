"""Downlink's pipeline steps. Each step is a subcommand of the `downlink` command-line program."""
import os

__version__ = os.environ.get("DOWNLINK_VERSION", "dev")


class StepError(Exception):
    """A failure the step reports as one clear line (and exit code 1), without a traceback."""
