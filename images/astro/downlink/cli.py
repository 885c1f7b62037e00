"""`downlink` command line: one subcommand per step module.

Exit codes (all steps): 0 success; 1 the step failed (the reason is on stderr);
2 bad usage or configuration.
"""
import argparse
import errno
import importlib
import sys

from downlink import StepError, __version__

# Subcommand -> its module. A step imports only its own module and libraries: importing every
# step (matplotlib for report, scipy for make-night, ...) cost each step about 2 s of start-up.
COMMANDS = {
    "versions": "envcheck", "iraf-imstat": "iraf_imstat", "store-imstat": "store_imstat", "migrate": "migrate",
    "download": "download", "archive": "archive", "index": "index", "diagnostics": "diagnostics",
    "make-night": "make_night", "make-manifest": "manifest", "calibrate": "calibrate", "iraf-stats": "iraf_stats",
    "sources": "sources", "report": "report", "health": "health", "describe": "describe",
    "housekeeping": "housekeeping",
}


def build_parser(only=None):
    """The parser of every subcommand, or of `only` alone (what a step run needs)."""
    parser = argparse.ArgumentParser(
        prog="downlink",
        description="Downlink pipeline steps, runnable by hand inside the astro image.",
        epilog="Exit codes: 0 success; 1 step failed (reason on stderr); 2 bad usage or configuration.",
    )
    parser.add_argument("--version", action="version", version=f"downlink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="STEP", required=True)
    for command, name in COMMANDS.items():
        if only is not None and command != only:
            continue
        module = importlib.import_module(f"downlink.{name}")
        p = module.add_parser(sub)
        p.set_defaults(run=module.run)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    except StepError as exc:  # a setting of this step that does not parse (downlink.settings)
        print(f"downlink {argv[0]}: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except StepError as exc:
        print(f"downlink {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A full volume is an operator's problem, not a bug: one line saying where and how full.
        print(f"downlink {args.command}: error: {no_space_message(exc)}", file=sys.stderr)
        return 1


def no_space_message(exc):
    from downlink import layout

    what = f" writing {exc.filename}" if exc.filename else ""
    return f"no space left on the device{what}; " + layout.space_report()
