"""`python -m downlink_airflow.cli`: the registry's command line, run in the Airflow image
(`make check`, `make import-crontab`).

Exit codes: 0 fine; 1 the registry (or crontab) has problems, each printed naming the entry and
the field (or the line); 2 bad usage.
"""
import argparse
import sys

from downlink_airflow import step_secrets
from downlink_airflow.config import Settings
from downlink_airflow.registry import RegistryError, default_path, load_registry, programs_missing, read_programs


def add_check_parser(sub):
    p = sub.add_parser("check", help="check the script registry and print its chains",
                       description="Check the registry as the DAG factory reads it; exit 1 on any problem.")
    p.add_argument("registry", nargs="?", default=None, help="registry file (default: dags/registry.yaml)")
    p.add_argument("--quiet", "-q", action="store_true", help="print problems only")
    p.add_argument("--programs", metavar="FILE",
                   help="the astro image's PATH list (/usr/share/downlink/path-programs.txt in the image): "
                        "a command whose program is not in it is a problem")
    p.add_argument("--image", default="the astro image", help="the image the list is from, for the messages")
    p.set_defaults(run=run_check)


def run_check(args):
    path = args.registry or default_path()
    try:
        reg = load_registry(path)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not args.quiet:
        for name, chain in reg.chains.items():
            scripts = reg.chain_scripts(name)
            zone = f" {chain.timezone}" if chain.schedule and chain.timezone != "UTC" else ""
            paused = "; created paused" if chain.paused else ""
            print(f"{name}  (schedule: {chain.schedule or 'manual'}{zone}{paused}; {len(scripts)} steps)")
            for s in scripts:
                after = f"  after {', '.join(s.after)}" + (" [always]" if s.when == "always" else "") if s.after else ""
                print(f"  {s.name}{after}")
    problems = reg.problems + secret_file_problems(reg, Settings.from_env().secrets_dir)
    if args.programs:
        try:
            programs = read_programs(args.programs)
        except (OSError, UnicodeDecodeError) as exc:
            print(f"check: {args.programs}: cannot read the image's PATH list: {getattr(exc, 'strerror', None) or exc}",
                  file=sys.stderr)
            return 1
        problems += programs_missing(reg, programs, args.image)
    if problems:
        print(RegistryError(problems, path), file=sys.stderr)
        return 1
    print(f"{path}: OK, {len(reg.chains)} chains, {len(reg.scripts)} scripts")
    return 0


def secret_file_problems(reg, folder):
    """Each named secret that is missing or readable by others, naming the entry and the field
    (the DAG factory does not look at the files: the folder is checked here, before a deploy)."""
    out = []
    for s in reg.scripts:
        for name in s.secrets:
            out += [f"entry {s.name!r}: secrets: {p}" for p in step_secrets.problems_of(folder, name)]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m downlink_airflow.cli", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_check_parser(sub)
    try:
        from downlink_airflow.crontab import cli as crontab_cli
    except ImportError:  # pragma: no cover - the importer ships with the registry
        crontab_cli = None
    if crontab_cli is not None:
        crontab_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
