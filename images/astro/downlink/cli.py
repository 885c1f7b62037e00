"""`downlink` command line: one subcommand per step module.

Exit codes (all steps): 0 success; 1 the step failed (the reason is on stderr);
2 bad usage or configuration.
"""
import argparse
import errno
import sys

from downlink import StepError, __version__
from downlink import envcheck, iraf_imstat, migrate, store_imstat
from downlink import archive, calibrate, diagnostics, download, health, index, iraf_stats, make_night, manifest, report, sources

STEP_MODULES = (envcheck, iraf_imstat, store_imstat, migrate, download, archive, index, diagnostics, make_night, manifest, calibrate, iraf_stats, sources, report, health)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="downlink",
        description="Downlink pipeline steps, runnable by hand inside the astro image.",
        epilog="Exit codes: 0 success; 1 step failed (reason on stderr); 2 bad usage or configuration.",
    )
    parser.add_argument("--version", action="version", version=f"downlink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="STEP", required=True)
    for module in STEP_MODULES:
        p = module.add_parser(sub)
        p.set_defaults(run=module.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
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
