"""`make try ENTRY=name [NIGHT=YYYY-MM-DD]`: run one registry entry once, now, in its container
with its mounts, secrets and environment, the output on the terminal and its outcome as the exit
code (0 the task succeeded, 1 it failed, 2 bad usage or an entry that cannot run). What a cron
user does by hand before trusting a line.

    python -m downlink_airflow.try_entry ENTRY [--night YYYY-MM-DD]   (in the scheduler container)

It is Airflow's `airflow tasks test CHAIN ENTRY` (the task runs in this process, without the
scheduler, its dependencies or its retries; the run it makes is deleted afterwards, so a try
leaves no history), with the night given as the chain's `night` parameter. `airflow tasks test`
itself exits 0 whatever the task did, so the task's final state is taken from the run here.
"""
import argparse
import difflib
import json
import re
import sys

from downlink_airflow.registry import RegistryError, default_path, load_registry

NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class CannotTry(Exception):
    """The entry cannot be run; str() says why, naming it."""


def task_of(registry, name):
    """(dag_id, task_id) of registry entry `name`: its chain and its name."""
    for s in registry.scripts:
        if s.name == name:
            return s.chain, s.name
    # Problems name an entry as `scripts[3] 'name': field: ...` (or `entry 'name': ...`).
    own = re.compile(r"(^|\]\s|entry\s)" + re.escape(repr(name)) + ":")
    broken = [p for p in registry.problems if own.search(p)]
    if broken:
        raise CannotTry(f"entry {name!r} is left out of its chain (`make check`):\n  " + "\n  ".join(broken))
    known = [s.name for s in registry.scripts]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; the entries are: {', '.join(known)}"
    raise CannotTry(f"no entry {name!r} in {registry.source}{hint}")


def airflow_args(dag_id, task_id, night=None):
    """The `airflow tasks test` command line for one try."""
    args = ["tasks", "test", dag_id, task_id]
    if night:
        args += ["--task-params", json.dumps({"night": night})]
    return args


def run_task_test(args):
    """Run `airflow tasks test` in this process; the task's final state (None if it never ran)."""
    from airflow.cli import cli_parser
    from airflow.cli.commands import task_command

    states = []
    real = task_command._run_task

    def recording(*, ti, task, run_triggerer=False):
        try:
            return real(ti=ti, task=task, run_triggerer=run_triggerer)
        finally:
            states.append(getattr(ti.state, "value", ti.state))  # TaskInstanceState -> "success"

    # Airflow 3.3's task_test calls this module-level helper; wrapping it is how the outcome is
    # seen (tests/unit/airflow/test_try_entry.py runs a real task through it).
    task_command._run_task = recording
    try:
        parsed = cli_parser.get_parser().parse_args(args)
        parsed.func(parsed)
    finally:
        task_command._run_task = real
    return states[-1] if states else None


def main(argv=None):
    p = argparse.ArgumentParser(prog="make try", description=__doc__.split("\n\n")[0])
    p.add_argument("entry", help="the registry entry's name")
    p.add_argument("--night", help="the night to process, YYYY-MM-DD (default: last night)")
    p.add_argument("--registry", default=None, help="registry file (default: the stack's dags/registry.yaml)")
    args = p.parse_args(argv)
    if args.night and not NIGHT.match(args.night):
        print(f"try: NIGHT={args.night!r}: not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    try:
        dag_id, task_id = task_of(load_registry(args.registry or default_path()), args.entry)
    except (RegistryError, CannotTry) as exc:
        print(f"try: {exc}", file=sys.stderr)
        return 2
    print(f"try: {args.entry} (chain {dag_id}), night {args.night or 'last night'}, once, now", file=sys.stderr)
    state = run_task_test(airflow_args(dag_id, task_id, args.night))
    ok = state == "success"
    print(f"try: {args.entry}: {state or 'did not run'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
