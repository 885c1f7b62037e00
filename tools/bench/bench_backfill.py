#!/usr/bin/env python3
"""Benchmark: a 4-night backfill on the CeleryExecutor with 1 worker, then with 2 workers.

    python tools/bench/bench_backfill.py [--quick] [--out build/bench]

Brings up its own stack (compose project downlink-bench-backfill, its own ports, the Celery
override), generates 8 nights in the development archive, backfills nights 1-4 with one worker,
scales to two workers and backfills nights 5-8 (the same amount of work: make-night's nights
differ only in dates). Both use `tools/backfill.py` (Airflow's backfill, 4 runs at once). The
stack is torn down with its volumes at the end, whatever happens. --quick: 2 nights each.
Writes build/bench/backfill.json (see the bench contract).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROJECT = "downlink-bench-backfill"
ENV = {
    "DOWNLINK_PROJECT": PROJECT,
    "DOWNLINK_WEB_PORT": os.environ.get("BENCH_BACKFILL_WEB_PORT", "18780"),
    "DOWNLINK_MAIL_PORT": os.environ.get("BENCH_BACKFILL_MAIL_PORT", "18781"),
    "DOWNLINK_DB_PORT": os.environ.get("BENCH_BACKFILL_DB_PORT", "18782"),
    "COMPOSE_FILE": "docker-compose.yaml:docker-compose.celery.yaml",
    "DOWNLINK_WORKERS": "1",
    "DOWNLINK_DATA_PATH": "",
}
FIRST_NIGHT = date(2026, 10, 1)
PARALLEL = 4


def compose(*args, check=True, timeout=1800):
    return subprocess.run(["docker", "compose", "--project-directory", ROOT, *args], env=os.environ,
                          check=check, capture_output=True, text=True, timeout=timeout)


def up(workers):
    os.environ["DOWNLINK_WORKERS"] = str(workers)
    result = compose("up", "-d", "--wait", "--scale", f"worker={workers}", check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the bench stack did not come up:\n{result.stderr[-3000:]}")


def seconds(a, b):
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(b) - parse(a)).total_seconds()


def load():
    return open("/proc/loadavg").read().split()[:3]


def run_backfill(backfill, api, first, last, workers):
    """Backfill first..last; returns its figures (wall time, runs, per-step durations, hosts)."""
    load_before = load()
    began = time.monotonic()
    created = backfill.create_backfill(api, "daily_chain", first, last, PARALLEL, "completed")
    runs = backfill.wait(api, created, timeout=3600, poll=2)
    if runs is None:
        raise RuntimeError(f"backfill {first}..{last} did not finish within an hour")
    wall = time.monotonic() - began
    states = [r["state"] for r in runs]
    steps, hosts = {}, set()
    for run in runs:
        for ti in api.task_instances("daily_chain", run["dag_run_id"]):
            if ti.get("start_date") and ti.get("end_date") and ti["task_id"] != "watcher":
                steps.setdefault(ti["task_id"], []).append(seconds(ti["start_date"], ti["end_date"]))
                hosts.add(ti.get("hostname"))
    span = seconds(min(r["start_date"] for r in runs), max(r["end_date"] for r in runs)) if runs else None
    return {"workers": workers, "nights": len(runs), "wall_s": wall, "span_s": span, "states": states,
            "ok": bool(runs) and all(s == "success" for s in states), "hosts": sorted(h for h in hosts if h),
            "step_s": {k: statistics.median(v) for k, v in steps.items()},
            "step_total_s": sum(sum(v) for v in steps.values()), "load_before": load_before, "load_after": load()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 nights per configuration instead of 4")
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
    args = parser.parse_args(argv)
    per_config = 2 if args.quick else 4
    started = time.monotonic()
    os.environ.update(ENV)
    os.environ["DOWNLINK_TAG"] = subprocess.run([os.path.join(ROOT, "tools", "image-tag.sh")], check=True,
                                                capture_output=True, text=True).stdout.strip()
    import backfill

    import dagrun

    tag = os.environ["DOWNLINK_TAG"]
    if subprocess.run(["docker", "image", "inspect", f"downlink/airflow:{tag}", f"downlink/astro:{tag}",
                       f"downlink/redis:{tag}"], capture_output=True).returncode != 0:
        print(f"bench backfill: the images for tag {tag} are missing: run `make build` first", file=sys.stderr)
        return 2

    nights = [FIRST_NIGHT + timedelta(days=i) for i in range(2 * per_config)]
    results = []
    compose("down", "--volumes", "--remove-orphans", check=False)
    try:
        up(1)
        api = dagrun.AirflowAPI()
        api.wait_for_dag("daily_chain", timeout=600)
        t0 = time.monotonic()
        backfill.generate_nights([n.isoformat() for n in nights])
        print(f"bench backfill: generated {len(nights)} nights in {time.monotonic() - t0:.0f} s", flush=True)
        for workers, chunk in ((1, nights[:per_config]), (2, nights[per_config:])):
            if workers == 2:
                up(2)
            r = run_backfill(backfill, api, chunk[0], chunk[-1], workers)
            results.append(r)
            print(f"bench backfill: {workers} worker(s): {r['nights']} nights in {r['wall_s']:.0f} s "
                  f"({'ok' if r['ok'] else r['states']}) on {len(r['hosts'])} host(s)", flush=True)
    finally:
        compose("down", "--volumes", "--remove-orphans", check=False)

    one, two = results
    ratio = one["wall_s"] / two["wall_s"]
    step_names = sorted(set(one["step_s"]) | set(two["step_s"]), key=lambda k: -one["step_s"].get(k, 0))
    report = {
        "name": "backfill",
        "order": 6,
        "title": f"{per_config}-night backfill: 1 vs 2 Celery workers",
        "targets": [{
            "target": f"(8) {per_config}-night backfill, 2 workers vs 1 (ratio reported)",
            "measured": f"1 worker {one['wall_s']:.0f} s, 2 workers {two['wall_s']:.0f} s",
            "ratio": f"{ratio:.2f}x (1 worker / 2 workers)",
            "met": one["ok"] and two["ok"] and len(two["hosts"]) == 2,
        }],
        "tables": [
            {"caption": f"Backfill of {per_config} nights, {PARALLEL} runs at once, heavy pool 2 slots, "
                        "4 task slots per worker",
             "columns": ["workers", "nights", "wall time (s)", "first start to last end (s)",
                         "sum of step durations (s)", "workers used", "load before", "load after"],
             "rows": [[r["workers"], r["nights"], f"{r['wall_s']:.0f}", f"{r['span_s']:.0f}",
                       f"{r['step_total_s']:.0f}", len(r["hosts"]), " ".join(r["load_before"]),
                       " ".join(r["load_after"])] for r in results]},
            {"caption": "Median step duration (s): the same steps take longer when more of them share the 2 cores",
             "columns": ["step", "1 worker", "2 workers"],
             "rows": [[k, f"{one['step_s'].get(k, 0):.1f}", f"{two['step_s'].get(k, 0):.1f}"] for k in step_names]},
        ],
        "plots": [],
        "notes": NOTES.format(cores=os.cpu_count(), ratio=ratio, one=one["wall_s"], two=two["wall_s"],
                              t1=one["step_total_s"], t2=two["step_total_s"],
                              c1=one["step_total_s"] / one["wall_s"], c2=two["step_total_s"] / two["wall_s"]),
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(time.monotonic() - started, 1),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "backfill.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"bench backfill: ratio {ratio:.2f}x; wrote {os.path.join(args.out, 'backfill.json')}")
    return 0 if report["targets"][0]["met"] else 1


NOTES = """\
**Method.** One stack on the CeleryExecutor (`docker-compose.celery.yaml`), its own compose
project. Eight nights are generated with `downlink make-night` (same frame counts; only dates
differ), so both configurations do the same work on different nights: nights 1-4 are backfilled
with one worker, then the stack is scaled to two workers (`--scale worker=2`) and nights 5-8 are
backfilled. Both use `tools/backfill.py` (Airflow's `POST /api/v2/backfills`), 4 runs at once,
4 task slots per worker, and the `heavy` pool's 2 slots. Wall time is from the backfill's
creation until all its runs have finished. One pair of runs: the machine is shared, so the load
average (in the table) adds noise of the order of the effect. Rerun with `--quick` for 2 nights.

**Result.** 1 worker {one:.0f} s, 2 workers {two:.0f} s: {ratio:.2f}x. On average
{c1:.1f} steps were running at once with one worker and {c2:.1f} with two (sum of step
durations {t1:.0f} s and {t2:.0f} s, over the wall time).

**What bounds it on this machine ({cores} cores).** A second worker adds task slots, not CPU.
With 4 nights at once, up to 12 steps are ready together (three branches after `archive`), and
one worker's 4 slots make them wait. That wait is what the second worker removes, and it is
where the gain comes from. The work itself is in the step containers (ccdproc calibration,
SExtractor, IRAF, FITS I/O, and each container's start and Python imports). They all run on the
same engine and the same 2 cores, whichever worker started them. So the sum of step durations
does not shrink. The CPU-heavy steps (`index`, `sources`, `iraf`) get slower per step, because
more of them share the cores. Past the point where both cores are busy all the time, more
workers or slots add only queueing for the CPU. On 2 cores the ratio therefore stays well below
2x, however many workers run. A second worker pays off fully only when it brings its own cores:
a second host with the shared archive (docs/scaling.md).
"""

if __name__ == "__main__":
    sys.exit(main())
