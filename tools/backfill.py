#!/usr/bin/env python3
"""Reprocess a range of nights with Airflow's own backfill, spread over the workers.

Usage: tools/backfill.py --from YYYY-MM-DD --to YYYY-MM-DD [--parallel N] [--chain daily_chain]
       (or `make backfill FROM=... TO=... [PARALLEL=n] [CHAIN=name]`)

A chain run processes the night that began the day before it (steps.py: NIGHT), so nights
FROM..TO are the schedule's ticks on FROM+1..TO+1: that range is handed to Airflow's backfill
(POST /api/v2/backfills), which creates one run per tick and keeps at most N of them running at
once (the backfill's max_active_runs). The executor spreads their tasks over the workers.
With the development archive (DOWNLINK_SOURCE unset), nights it does not hold yet are generated
first with `downlink make-night`, as archive-seed does for the sample night.

Exit codes: 0 every run succeeded; 1 a run failed (states are printed); 2 bad usage or timeout.
Standard library only, like tools/dagrun.py.
"""
import argparse
import subprocess
import sys
import time
import urllib.parse
from datetime import date, datetime, timedelta, timezone

import dagrun  # noqa: E402

DEV_SOURCE = "http://archive-server:8080"


def night(text):
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a night (YYYY-MM-DD)") from None


def nights_between(first, last):
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def tick_range(first, last):
    """The backfill window whose daily ticks process nights first..last (inclusive)."""
    start = datetime.combine(first + timedelta(days=1), datetime.min.time(), timezone.utc)
    end = datetime.combine(last + timedelta(days=1), datetime.max.time().replace(microsecond=0), timezone.utc)
    return start, end


def night_of(run):
    """The night a backfill run processes: the day before its tick (steps.py: NIGHT)."""
    after = datetime.fromisoformat(run["run_after"].replace("Z", "+00:00"))
    return (after - timedelta(days=1)).date().isoformat()


def generate_nights(nights):
    """Publish the nights the development archive lacks (deterministic, like the sample night)."""
    script = " ".join(f"test -f /srv/archive/{n}/manifest.json || downlink make-night --night {n} --out /srv/archive || exit 1;"
                      for n in nights)
    cmd = ["docker", "compose", "--project-directory", dagrun.ROOT, "run", "--rm", "--no-deps", "-T",
           "archive-seed", "sh", "-c", script]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"backfill: generating nights failed:\n{result.stderr[-2000:]}")
    for line in result.stdout.splitlines():
        if line.startswith("night "):
            print(f"  generated {line}")


def create_backfill(api, dag_id, first, last, parallel, reprocess):
    start, end = tick_range(first, last)
    body = {"dag_id": dag_id, "from_date": start.isoformat(), "to_date": end.isoformat(),
            "max_active_runs": parallel, "reprocess_behavior": reprocess, "run_backwards": False}
    return api._request("POST", "/api/v2/backfills", body)


def backfill_runs(api, dag_id, first, last):
    start, end = tick_range(first, last)
    query = urllib.parse.urlencode({"run_type": "backfill", "run_after_gte": start.isoformat(),
                                    "run_after_lte": end.isoformat(), "limit": 1000, "order_by": "run_after"})
    return api.get(f"/api/v2/dags/{dag_id}/dagRuns?{query}")["dag_runs"]


def wait(api, backfill, timeout, poll=5):
    """Until every run of the backfill has finished (Airflow creates them all at once, queued;
    its completed_at follows a scheduler loop later). Returns the runs, or None on timeout."""
    first, last = (datetime.fromisoformat(backfill[k].replace("Z", "+00:00")) for k in ("from_date", "to_date"))
    first, last = (first - timedelta(days=1)).date(), (last - timedelta(days=1)).date()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = backfill_runs(api, backfill["dag_id"], first, last)
        if runs and all(r["state"] in dagrun.FINISHED for r in runs):
            return runs
        if not runs and api.get(f"/api/v2/backfills/{backfill['id']}").get("completed_at"):
            return runs  # nothing to reprocess (--reprocess none/failed)
        time.sleep(poll)
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="first", type=night, required=True, help="first night (YYYY-MM-DD)")
    parser.add_argument("--to", dest="last", type=night, required=True, help="last night (YYYY-MM-DD), inclusive")
    parser.add_argument("--parallel", type=int, default=2, help="runs (nights) at once (default 2)")
    # --dag: the option's first name, kept for scripts that use it.
    parser.add_argument("--chain", "--dag", dest="dag", metavar="CHAIN", default="daily_chain",
                        help="the chain (DAG) to backfill; it needs a schedule: one run per tick in the window "
                             "(default daily_chain)")
    parser.add_argument("--reprocess", choices=("none", "failed", "completed"), default="completed",
                        help="nights that already have a run: completed (default) reruns them all, "
                             "failed only failed ones, none skips them")
    parser.add_argument("--no-generate", action="store_true", help="never generate nights in the development archive")
    parser.add_argument("--timeout", type=float, default=6 * 3600)
    args = parser.parse_args(argv)
    if args.last < args.first:
        parser.error(f"--to {args.last} is before --from {args.first}")
    if not 1 <= args.parallel <= 64:
        parser.error(f"--parallel {args.parallel}: use 1 to 64")
    nights = [n.isoformat() for n in nights_between(args.first, args.last)]

    api = dagrun.AirflowAPI()
    api.wait_for_dag(args.dag)
    if not args.no_generate and dagrun.setting("DOWNLINK_SOURCE", DEV_SOURCE) == DEV_SOURCE:
        generate_nights(nights)
    began = time.monotonic()
    backfill = create_backfill(api, args.dag, args.first, args.last, args.parallel, args.reprocess)
    print(f"backfill {backfill['id']} of {args.dag}: nights {nights[0]} .. {nights[-1]} "
          f"({len(nights)}), at most {args.parallel} at once; waiting ...", flush=True)
    runs = wait(api, backfill, args.timeout)
    if runs is None:
        print(f"backfill {backfill['id']} did not finish within {args.timeout:.0f} s", file=sys.stderr)
        return 2
    ok = True
    for run in runs:
        ok &= run["state"] == "success"
        print(f"  night {night_of(run)}  {run['state']:<8} {run['dag_run_id']}")
    print(f"backfill {backfill['id']}: {sum(r['state'] == 'success' for r in runs)}/{len(runs)} runs succeeded "
          f"in {time.monotonic() - began:.0f} s")
    return 0 if ok and runs else 1


if __name__ == "__main__":
    sys.exit(main())
