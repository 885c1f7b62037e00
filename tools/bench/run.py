#!/usr/bin/env python3
"""`make bench [ONLY=a,b]`: run the benchmark modules (tools/bench/bench_<name>.py) in a fixed order,
each writing build/bench/<name>.json, then tools/bench/report.py -> docs/benchmarks.md.
A subset (--only) keeps the other benchmarks' last results. A module that fails is reported and the
others still run; the exit status is then non-zero."""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Issue 7 items 1..5, then issue 8's backfill. A name whose module is absent is skipped with a note.
BENCHES = ["overhead", "ingest", "latency", "calibration", "footprint", "backfill"]  # issue 7 items 1-5, then issue 8


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", help="comma-separated benchmark names (default: all)")
    p.add_argument("--quick", action="store_true", help="pass --quick to every module (a smoke run)")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
    args = p.parse_args()
    wanted = args.only.split(",") if args.only else BENCHES
    unknown = [n for n in wanted if n not in BENCHES]
    if unknown:
        sys.exit(f"bench: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    with open("/proc/loadavg") as fh:
        load_start = " ".join(fh.read().split()[:3])
    failed = []
    for name in BENCHES:
        if name not in wanted:
            continue
        module = os.path.join(HERE, f"bench_{name}.py")
        if not os.path.exists(module):
            print(f"bench: {name}: no module {os.path.relpath(module, ROOT)} yet, skipped")
            continue
        print(f"bench: {name} ...", flush=True)
        start = time.time()
        cmd = [sys.executable, module, "--out", args.out] + (["--quick"] if args.quick else [])
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
            print(f"bench: {name} FAILED after {time.time() - start:.0f} s", file=sys.stderr)
    report = [sys.executable, os.path.join(HERE, "report.py"), "--results", args.out, "--load-start", load_start]
    subprocess.run(report, cwd=ROOT, check=True)
    if failed:
        sys.exit(f"bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
