"""The `import-crontab` command (a subcommand of `python -m downlink_airflow.cli`)."""
import argparse
import os
import sys

import yaml

from downlink_airflow.crontab import merge
from downlink_airflow.crontab import scripts as crontab_scripts
from downlink_airflow.crontab.command import DEFAULT_WRAPPERS
from downlink_airflow.crontab.parse import import_crontab


def add_parser(subparsers):
    p = subparsers.add_parser(
        "import-crontab", help="turn a crontab into registry entries",
        description="Translate a user crontab into script-registry entries: YAML on stdout, or merged "
                    "into a registry with --into. Any line that cannot be translated is printed as "
                    "FILE:LINE: reason: line, and then nothing is written (exit 1) unless --skip-unsupported.")
    p.add_argument("crontab", metavar="FILE", help="the crontab (as `crontab -l` prints it); - for stdin")
    p.add_argument("--into", metavar="REGISTRY",
                   help="append the chains and scripts to this registry (e.g. dags/registry.yaml), keeping its "
                        "text; the result is checked before it is written, atomically")
    p.add_argument("--wrapper", metavar="NAME", action="append", default=[],
                   help="another environment set-up command or wrapper to drop (glob; repeatable); always "
                        "dropped: " + ", ".join(DEFAULT_WRAPPERS) + ", source/.")
    p.add_argument("--scripts", metavar="DIR",
                   help="the folder holding the crontab's scripts: each script a command names (matched by "
                        "basename) is copied into --scripts-into and called by name; the others are listed")
    p.add_argument("--scripts-into", metavar="DIR", default="images/astro/scripts",
                   help="where --scripts copies them (default: images/astro/scripts, on the astro image's PATH)")
    p.add_argument("--skip-unsupported", action="store_true",
                   help="import what can be imported; the skipped lines are listed in comments at the top")
    p.set_defaults(run=run)
    return p


def run(args, stdout=None, stderr=None):
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr

    def say(*lines, to=stderr):
        for line in lines:
            print(line, file=to)

    try:
        if args.crontab == "-":
            text, source = sys.stdin.read(), "stdin"
        else:
            with open(args.crontab, encoding="utf-8") as fh:
                text = fh.read()
            source = args.crontab
    except (OSError, UnicodeDecodeError) as exc:
        say(f"import-crontab: {args.crontab}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        return 2

    existing_text, existing = None, {}
    if args.into:
        try:
            with open(args.into, encoding="utf-8") as fh:
                existing_text = fh.read()
            existing = yaml.safe_load(existing_text) or {}
        except FileNotFoundError:
            say(f"import-crontab: {args.into}: no such registry (without --into the YAML goes to stdout)")
            return 2
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            say(f"import-crontab: {args.into}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            return 1
        if not isinstance(existing, dict):
            say(f"import-crontab: {args.into}: not a registry (a mapping with chains: and scripts:)")
            return 1

    names, chains = merge.registry_names(existing)
    result = import_crontab(text, source, wrappers=args.wrapper, reserved_names=names, reserved_chains=chains)
    if result.problems:
        say(*map(str, result.problems))
        if not args.skip_unsupported:
            say(f"import-crontab: {len(result.problems)} line(s) cannot be imported; nothing written. "
                "Fix them, or import the rest with --skip-unsupported.")
            return 1
        say(f"import-crontab: skipped {len(result.problems)} line(s), listed at the top of the output")
    if not result.entries:
        say(f"import-crontab: {source}: no cron job to import; nothing written")
        return 1

    plan = None
    if args.scripts:
        if not os.path.isdir(args.scripts):
            say(f"import-crontab: --scripts {args.scripts}: no such folder")
            return 2
        plan = crontab_scripts.plan(result.entries, args.scripts, args.scripts_into)
        notes = plan.notes("images/astro/scripts/", args.scripts)
        result.notes += notes
        say(*(f"import-crontab: {n}" for n in notes))

    def copy_scripts():
        if plan is None:
            return True
        try:
            crontab_scripts.copy(plan)
        except OSError as exc:
            say(f"import-crontab: {args.scripts_into}: cannot copy the scripts: {exc.strerror or exc}; nothing written")
            return False
        return True

    if not args.into:
        output = result.to_yaml()
        problems = merge.validate(yaml.safe_load(output), source)
        if problems:
            say(*problems, "import-crontab: the registry rejects the translation (a bug in the importer); "
                           "nothing written")
            return 1
        if not copy_scripts():
            return 1
        stdout.write(output)
        return 0

    try:
        merged = merge.merge_text(existing_text, result, args.into)
    except merge.MergeError as exc:
        say(f"import-crontab: {args.into}: {exc}; nothing written")
        return 1
    before = set(merge.validate(existing, args.into))
    after = merge.validate(yaml.safe_load(merged), args.into)
    new = [p for p in after if p not in before]
    if before:
        say(f"import-crontab: {args.into} already had {len(before)} problem(s) (`make check`); they are not "
            "the import's")
    if new:
        say(*new, f"import-crontab: {args.into}: the merged registry has problems; nothing written")
        return 1
    if not copy_scripts():
        return 1
    try:
        merge.write_atomic(args.into, merged)
    except OSError as exc:
        say(f"import-crontab: {args.into}: cannot write: {exc.strerror or exc}; nothing written")
        return 1
    say(f"{args.into}: added {len(result.entries)} script(s) in {len(result.chains)} chain(s): "
        f"{', '.join(result.chains)}. Check with `make check`, then `make deploy`.", to=stdout)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m downlink_airflow.crontab")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return args.run(args)

