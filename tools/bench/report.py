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


def render(results, load_start, kept_rows=(), kept_sections=()):
    """The page; `kept_rows`/`kept_sections` ((order, text)) come from the page before (old_sections)."""
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
                    for r in results for t in r["targets"]])]
    lines += [*kept_rows, ""]
    sections = sorted([(r["order"], r) for r in results] + list(kept_sections), key=lambda x: x[0])
    for _, r in sections:
        if isinstance(r, str):
            lines += [r.rstrip(), ""]
            continue
        lines += [f"## {r['order']}. {r['title']}", "",
                  f"Measured {r['measured_at']} in {r['seconds']:.0f} s (`make bench ONLY={r['name']}`).", ""]
        for t in r.get("tables", []):
            lines += [f"*{t['caption']}*", "", table(t["columns"], t["rows"]), ""]
        for plot in r.get("plots", []):
            lines += [f"![{r['title']}]({os.path.relpath(os.path.join(ROOT, plot), os.path.join(ROOT, 'docs'))})", ""]
        if r.get("notes"):
            lines += [r["notes"].rstrip(), ""]
    return "\n".join(lines)


RESULTS_KEPT = os.path.join(ROOT, "docs", "bench", "results")


def load_results(results_dir):
    """{name: result}: the last committed results (docs/bench/results), replaced by this run's
    (build/bench). Files there that are not results (ingest-times.json: raw times) are left out."""
    results = {}
    for folder in (RESULTS_KEPT, results_dir):
        for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
            with open(path) as fh:
                r = json.load(fh)
            if isinstance(r, dict) and {"name", "order", "title", "targets"} <= r.keys():
                results[r["name"]] = r
    return results


def old_sections(page, titles):
    """Summary rows and sections of an existing page for benchmarks with no result file (measured
    before results were kept in docs/bench/results): a subset run must not drop them."""
    if not os.path.exists(page):
        return [], []
    with open(page) as fh:
        text = fh.read()
    parts = text.split("\n## ")
    rows = [line for part in parts if part.startswith("Summary") for line in part.splitlines()[4:]
            if line.startswith("| ") and line.split(" | ")[0][2:] not in titles]
    sections = [(int(part.split(".", 1)[0]), "## " + part.rstrip()) for part in parts
                if part[:1].isdigit() and part.split("\n", 1)[0].split(". ", 1)[-1] not in titles]
    return rows, sections


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default=os.path.join(ROOT, "build", "bench"))
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    p.add_argument("--load-start", default="")
    args = p.parse_args()
    results = sorted(load_results(args.results).values(), key=lambda r: (r["order"], r["name"]))
    os.makedirs(RESULTS_KEPT, exist_ok=True)
    for r in results:  # kept with the page, so the next subset run can render every section
        with open(os.path.join(RESULTS_KEPT, f"{r['name']}.json"), "w") as fh:
            json.dump(r, fh, indent=1, sort_keys=True)
    rows, sections = old_sections(args.out, {r["title"] for r in results})
    page = render(results, args.load_start, rows, sections)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(page)
    print(f"bench: wrote {os.path.relpath(args.out, ROOT)} ({len(results)} benchmarks from results, "
          f"{len(sections)} kept from the page)")


if __name__ == "__main__":
    main()
