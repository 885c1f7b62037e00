"""Downlink's pipeline steps. Each step is a subcommand of the `downlink` command-line program."""


class StepError(Exception):
    """A failure the step reports as one clear line (and exit code 1), without a traceback."""


from downlink.settings import get as _setting  # noqa: E402 (settings needs StepError)

__version__ = _setting("version")
