#!/usr/bin/env python3
"""docs/benchmarks.md from build/bench/*.json: the machine (it may be shared: load averages at the
start and end), a summary of every target, then one section per benchmark (tables, plots, notes)."""
import argparse
import glob
import json
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_model():
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib():
    with open("/proc/meminfo") as fh:
        return int(fh.readline().split()[1]) / 1024 / 1024


def loadavg():
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def docker_version():
    try:
        return subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def shared_note(load_start):
    """Say plainly when the machine was busy with other work (1-minute load above 1.5x its core
    count: a benchmark's own stack alone brings a 2-core machine to about 2.5)."""
    loads = [float(x.split()[0]) for x in (load_start, loadavg()) if x]
    if loads and max(loads) > 1.5 * (os.cpu_count() or 1):
        return (f"**The machine was shared with other work during this run** (1-minute load average up to "
                f"{max(loads):.1f} on {os.cpu_count()} cores at the start or end; each benchmark records its own "
                "load at its start and end). Absolute times are therefore slower than on an idle machine; the "
                "side-by-side ratios, measured in the same minutes, are the meaningful figures.")
    return ("The machine may be shared with other work while the benchmarks run: the load averages say how busy "
            "it was, and each benchmark records its own at its start and end.")


def cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(columns, rows):
    out = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def render(results, load_start):
    lines = ["# Benchmarks", "",
             "Written by `make bench` (tools/bench/report.py) from `build/bench/*.json`; do not edit by hand.",
             "Each benchmark measures Downlink and its baseline side by side in the same run; see its notes.", "",
             "## Machine", "",
             table(["", ""], [["CPU", f"{cpu_model()}, {os.cpu_count()} cores"], ["RAM", f"{ram_gib():.1f} GiB"],
                              ["kernel", platform.release()], ["Docker engine", docker_version()],
                              ["load average (1, 5, 15 min) at the start / end of the run",
                               f"{load_start or 'n/a'} / {loadavg()}"]]),
             "", shared_note(load_start), "",
             "## Summary", "",
             table(["benchmark", "target", "measured", "ratio", "met"],
                   [[r["title"], t["target"], t["measured"], t["ratio"], {True: "yes", False: "**no**"}.get(t["met"], "–")]
                    for r in results for t in r["targets"]]), ""]
    for r in results:
        lines += [f"## {r['order']}. {r['title']}", "",
                  f"Measured {r['measured_at']} in {r['seconds']:.0f} s (`make bench ONLY={r['name']}`).", ""]
        for t in r.get("tables", []):
            lines += [f"*{t['caption']}*", "", table(t["columns"], t["rows"]), ""]
        for plot in r.get("plots", []):
            lines += [f"![{r['title']}]({os.path.relpath(os.path.join(ROOT, plot), os.path.join(ROOT, 'docs'))})", ""]
        if r.get("notes"):
            lines += [r["notes"].rstrip(), ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default=os.path.join(ROOT, "build", "bench"))
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    p.add_argument("--load-start", default="")
    args = p.parse_args()
    results = []
    for path in sorted(glob.glob(os.path.join(args.results, "*.json"))):
        with open(path) as fh:
            results.append(json.load(fh))
    results.sort(key=lambda r: (r["order"], r["name"]))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(render(results, args.load_start))
    print(f"bench: wrote {os.path.relpath(args.out, ROOT)} ({len(results)} benchmarks)")


if __name__ == "__main__":
    main()
