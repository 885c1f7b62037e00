#!/usr/bin/env python3
"""Issue 7 item 2 and issue 14, header ingest rate: N small FITS files (plain, multi-extension, fpack .fz and
.gz) indexed into a real Postgres with the archive schema, three ways, side by side per repetition:
  (a) naive: the step's per-file work, then one INSERT and one COMMIT per file
  (b) Downlink's index step as it runs in the chain: `downlink index --night` in the astro image
  (c) reading the headers alone with astropy, no database (the upper bound)
and (issue 14) bytes: a night of 50 x 40 MB frames through download + archive + index against
sha256sum over the same files. Writes build/bench/ingest.json and docs/bench/ingest-rate.png.
"""
import datetime
import json
import os
import re
import time

import benchlib  # noqa: E402

# Repetitions per N (BENCH_INGEST_REPS="1000:5,2000:5,5000:3,10000:1" to change): median of 5 up to
# 2,000 files; fewer for the large nights, whose runs take minutes on a loaded 2-core machine.
REPS = dict(tuple(map(int, item.split(":"))) for item in
            os.environ.get("BENCH_INGEST_REPS", "1000:5,2000:5,5000:3,10000:1").split(","))
NAIVE_SIZES = {1000: 5}  # (a) costs the most per file: measured at 1,000 files
DESCRIBE_SIZES = (1000,)  # the step's read alone, for the breakdown
QUICK_REPS = {200: 2, 500: 2}
PLOT = "docs/bench/ingest-rate.png"


def night_of(n):
    return (datetime.date(2026, 1, 1) + datetime.timedelta(days=n % 1000 + n // 1000)).isoformat()


def docker_astro(net, data, dsn, *cmd):
    return ["docker", "run", "--rm", "--network", net, "-v", f"{data}:/data",
            "-v", f"{os.path.join(benchlib.ROOT, 'tools', 'bench')}:/bench:ro",
            "-e", f"DOWNLINK_ARCHIVE_DSN={dsn}", "-e", "DOWNLINK_RUN_ID=bench", f"downlink/astro:{benchlib.image_tag()}",
            *cmd]


def make_nights(data, sizes):
    """pool/ holds the largest night's files; each night is hard links to the first N of them."""
    print(f"ingest: generating {max(sizes)} FITS files ...", flush=True)
    out = benchlib.sh(["docker", "run", "--rm", "--network", "none", "-u", str(os.getuid()),
                       "-v", f"{os.path.join(benchlib.ROOT, 'tools', 'bench')}:/bench:ro", "-v", f"{data}:/out",
                       f"downlink/astro:{benchlib.image_tag()}", "python3", "/bench/fitsgen.py", "/out/pool",
                       str(max(sizes))])
    pool = sorted(os.listdir(os.path.join(data, "pool")))
    for n in sizes + (0,):
        night = os.path.join(data, "raw", night_of(n))
        os.makedirs(night)
        for name in pool[:n]:
            os.link(os.path.join(data, "pool", name), os.path.join(night, name))
    total = sum(os.path.getsize(os.path.join(data, "pool", n)) for n in pool)
    return out.strip(), total


def run_step_container(net, data, dsn, n):
    """(b) exactly as the chain runs it: a fresh container, timed from the host (container creation included)."""
    start = time.perf_counter()
    out = benchlib.sh(docker_astro(net, data, dsn, "downlink", "index", "--night", night_of(n)))
    seconds = time.perf_counter() - start
    m = re.search(r"(\d+) files indexed, (\d+) unreadable; (\d+) observations", out)
    if not m or int(m.group(1)) != n or int(m.group(2)) != 0 or int(m.group(3)) != n:
        raise SystemExit(f"ingest: the index step did not index {n} files: {out}")
    return seconds


def inner(net, data, dsn, items):
    out = benchlib.sh(docker_astro(net, data, dsn, "python3", "/bench/ingest_inner.py", *items))
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def measure(net, data, dsn, reps, naive_sizes, describe_sizes):
    """One container per repetition runs every mode for every size, interleaved, so that all modes
    see the same load; the step runs as a child process of that container (see ingest_inner.py)."""
    times = {}  # (mode, n) -> [seconds]
    small = min(reps)
    for rep in range(max(reps.values())):
        now = [n for n in sorted(reps) if rep < reps[n]]
        print(f"ingest: repetition {rep + 1}/{max(reps.values())}: N = {now} (load {benchlib.loadavg()})", flush=True)
        items = ["truncate:x", f"step:{night_of(0)}"]
        for n in now:
            items += [f"headers:{night_of(n)}"] + ([f"describe:{night_of(n)}"] if n in describe_sizes else [])
            if rep < naive_sizes.get(n, 0):
                items += ["truncate:x", f"naive:{night_of(n)}"]
            items += ["truncate:x", f"step:{night_of(n)}"]
        for r in inner(net, data, dsn, items):
            if r["mode"] != "truncate":
                times.setdefault((r["mode"], r["n"]), []).append(r["seconds"])
        # the DB now holds only the largest night: the smallest one is a first ingest again
        times.setdefault(("container", small), []).append(run_step_container(net, data, dsn, small))
        top = max(now)
        print(f"ingest:   N = {top:,}: step {top / times[('step', top)][-1]:,.0f} files/s, "
              f"headers only {top / times[('headers', top)][-1]:,.0f} files/s", flush=True)
    return times


def idempotency(net, data, dsn, pg, n):
    """Index the largest night again on top of itself: no duplicates, same count."""
    seconds = run_step_container(net, data, dsn, n)
    count, distinct = benchlib.psql(
        pg, f"SELECT count(*), count(DISTINCT path) FROM observations WHERE night = '{night_of(n)}'").strip().split("|")
    if int(count) != n or int(distinct) != n:
        raise SystemExit(f"ingest: rerun left {count} rows ({distinct} distinct paths) for {n} files")
    return seconds


BIG_FILES = 50
BYTES_NIGHT = "2026-12-31"
# In one container: sha256sum over the night's files (page cache warmed first, as for the step),
# then the step chain on the same files; each timed around its commands.
BYTES_SCRIPT = r"""
import json, subprocess, sys, time
night = sys.argv[1]
files = f"/data/bytes-src/{night}/*.fits"
sha = f"sha256sum {files} > /dev/null"
subprocess.run(sha, shell=True, check=True)
t0 = time.perf_counter(); subprocess.run(sha, shell=True, check=True); t1 = time.perf_counter()
for step in (["download", "--source", "/data/bytes-src"], ["archive"], ["index"]):
    subprocess.run(["downlink", step[0], "--night", night, *step[1:]], check=True, stdout=subprocess.DEVNULL)
t2 = time.perf_counter()
print(json.dumps({"sha256sum": t1 - t0, "ingest": t2 - t1}))
"""


def measure_bytes(net, data, dsn, n=BIG_FILES):
    """Issue 14: a night of large frames through download + archive + index (a directory source,
    as from an NFS mount) against sha256sum over the same files, in the same container."""
    print(f"ingest: bytes: generating {n} large frames ...", flush=True)
    made = benchlib.sh(["docker", "run", "--rm", "--network", "none", "-u", str(os.getuid()),
                        "-v", f"{os.path.join(benchlib.ROOT, 'tools', 'bench')}:/bench:ro", "-v", f"{data}:/out",
                        f"downlink/astro:{benchlib.image_tag()}", "python3", "/bench/bigframes.py",
                        f"/out/bytes-src/{BYTES_NIGHT}", str(n)]).strip()
    folder = os.path.join(data, "bytes-src", BYTES_NIGHT)
    total = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".fits"))
    out = benchlib.sh(docker_astro(net, data, dsn, "python3", "-c", BYTES_SCRIPT, BYTES_NIGHT))
    return made.splitlines()[-1], total, json.loads(out.strip().splitlines()[-1])


def plot(rates, sizes, path):
    """Rates against N (top) and the step's rate as a share of the headers-only rate measured in the
    same minutes (bottom): the share is what a changing machine load cannot move much."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, share) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for key, label, style in (("headers", "(c) headers only, no database", "o--"),
                              ("step_net", "(b) index step, start-up excluded", "s-"),
                              ("step", "(b) index step incl. Python start, imports, connect", "s:"),
                              ("describe", "step's per-file read (sha256 + describe), no database", "^-."),
                              ("naive", "(a) naive: INSERT + COMMIT per file", "x-")):
        pts = [(n, rates[key][n]) for n in sizes if n in rates.get(key, {})]
        if pts:
            ax.plot(*zip(*pts), style, label=label)
    ax.axhline(1000, color="grey", lw=0.8)
    ax.text(sizes[0], 1010, "target (b) >= 1000 files/s", fontsize=8, color="grey", va="bottom")
    ax.set_ylabel("files per second (median)")
    ax.set_ylim(bottom=0)
    ax.set_title("Header ingest rate vs N")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    share.plot(sizes, [100 * rates["step_net"][n] / rates["headers"][n] for n in sizes], "s-", color="tab:orange")
    share.axhline(50, color="grey", lw=0.8)
    share.text(sizes[0], 51, "target 50%", fontsize=8, color="grey", va="bottom")
    share.set_ylim(0, 100)
    share.set_ylabel("(b) as % of (c)")
    share.grid(alpha=0.3)
    share.set_xscale("log")
    share.set_xticks(sizes, [f"{n:,}" for n in sizes])
    share.minorticks_off()
    share.set_xlabel("files in the night (N)")
    fig.tight_layout()
    benchlib.save_plot(fig, path)


def main():
    args = benchlib.parse_args(__doc__)
    started = time.time()
    reps, naive_sizes, describe_sizes = REPS, NAIVE_SIZES, DESCRIBE_SIZES
    if args.quick:
        reps, naive_sizes, describe_sizes = QUICK_REPS, {200: 2}, (200,)
    sizes = tuple(sorted(reps))
    cleanup = benchlib.Cleanup()
    data = benchlib.data_dir("ingest", cleanup, keep=args.keep_data)
    mix, total_bytes = make_nights(data, sizes)
    net, dsn, pg = benchlib.postgres("ingest", cleanup)
    run_step_container(net, data, dsn, 0)  # creates the schema (the step migrates) and warms the image's files
    load_start = benchlib.loadavg()
    # The rate part takes half an hour on a loaded machine: its raw times are kept, so that a failure
    # in the bytes part can be rerun alone (BENCH_INGEST_REUSE=1) instead of losing them.
    saved = os.path.join(args.out, "ingest-times.json")
    if os.environ.get("BENCH_INGEST_REUSE") and os.path.exists(saved):
        with open(saved) as fh:
            kept = json.load(fh)
        times = {(m, int(n)): v for m, n, v in kept["times"]}
        rerun, load_start = kept["rerun"], kept["load_start"]
        print(f"ingest: rates reused from {saved} (measured {kept['measured']})", flush=True)
    else:
        times = measure(net, data, dsn, reps, naive_sizes, describe_sizes)
        rerun = idempotency(net, data, dsn, pg, min(sizes))
        os.makedirs(args.out, exist_ok=True)
        with open(saved, "w") as fh:
            json.dump({"times": [[m, n, v] for (m, n), v in times.items()], "rerun": rerun, "load_start": load_start,
                       "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}, fh)
    # The steps run as the image's own user, as in the stack: the data folder (made by root here)
    # must be writable for them (download writes staging/, archive raw/<night>/).
    for folder in (data, os.path.join(data, "raw")):
        os.chmod(folder, 0o1777)
    big_made, big_bytes, big_seconds = measure_bytes(net, data, dsn, 5 if args.quick else BIG_FILES)
    load_end = benchlib.loadavg()
    cleanup.run()

    med = {key: benchlib.median(v) for key, v in times.items()}
    startup = med[("step", 0)]
    rates = {}
    for (mode, n), s in med.items():
        if n:
            rates.setdefault(mode, {})[n] = n / s
    rates["step_net"] = {n: n / (med[("step", n)] - startup) for n in sizes}
    big, small = max(sizes), min(sizes)
    container = med[("container", small)]
    both = max(n for n in rates["naive"])  # the largest N at which (a) was measured
    b_big, b_net_big, c_big = rates["step"][big], rates["step_net"][big], rates["headers"][big]
    vs_naive = rates["step_net"][both] / rates["naive"][both]
    vs_naive_wall = rates["step"][both] / rates["naive"][both]
    targets = [
        {"target": "(b) >= 1000 files/s", "measured": f"{b_big:,.0f} files/s incl. Python start-up "
                   f"({b_net_big:,.0f} excl.), N = {big:,}", "ratio": f"{b_big / 1000:.2f}x target",
         "met": b_big >= 1000},
        {"target": "(b) >= 10x (a) naive", "measured": f"(b) {rates['step_net'][both]:,.0f} vs (a) "
                   f"{rates['naive'][both]:,.0f} files/s, N = {both:,}",
         "ratio": f"{vs_naive:.1f}x naive ({vs_naive_wall:.1f}x incl. start-up)", "met": vs_naive >= 10},
        {"target": "(b) >= 50% of (c) headers only", "measured": f"(b) {b_net_big:,.0f} vs (c) {c_big:,.0f} files/s, "
                   f"N = {big:,}", "ratio": f"{100 * b_net_big / c_big:.0f}% of (c)", "met": b_net_big >= 0.5 * c_big},
        {"target": "bytes: download + archive + index >= 70% of sha256sum's rate",
         "measured": f"{big_bytes / 1e6 / big_seconds['ingest']:,.0f} MB/s vs sha256sum "
                     f"{big_bytes / 1e6 / big_seconds['sha256sum']:,.0f} MB/s ({big_made})",
         "ratio": f"{100 * big_seconds['sha256sum'] / big_seconds['ingest']:.0f}% of sha256sum",
         "met": big_seconds["sha256sum"] >= 0.7 * big_seconds["ingest"]},
    ]
    cell = lambda key, n: f"{rates[key][n]:,.0f}" if n in rates.get(key, {}) else "-"  # noqa: E731
    rows = [[f"{n:,}", cell("naive", n), cell("step", n), cell("step_net", n), cell("describe", n), cell("headers", n),
             f"{1e6 / rates['step_net'][n]:,.0f}"] for n in sizes]
    counts = lambda mode, n: len(times.get((mode, n), []))  # noqa: E731
    plot(rates, list(sizes), os.path.join(benchlib.ROOT, PLOT))
    result = {
        "name": "ingest", "order": 2, "title": "Header ingest rate",
        "targets": targets,
        "tables": [{
            "caption": "Files per second, median over repetitions (per size: (b) and (c) "
                       + ", ".join(str(counts("step", n)) for n in sizes) + " runs; (a) "
                       + ", ".join(f"{counts('naive', n)} at {n:,}" for n in sizes if counts("naive", n)) + ")",
            "columns": ["N files", "(a) naive", "(b) step", "(b) step, excl. start-up", "step's read, no DB",
                        "(c) headers only", "(b) µs per file"],
            "rows": rows}, {
            "caption": "Other figures",
            "columns": ["what", "value"],
            "rows": [["Python start + imports + connect (`downlink index` on an empty night), median",
                      f"{startup:.2f} s"],
                     [f"(b) in a fresh container as the chain runs it (`docker run ... downlink index`), "
                      f"N = {small:,}, median of {len(times[('container', small)])}",
                      f"{container:.1f} s, {small / container:,.0f} files/s"],
                     [f"rerun of the step (fresh container) on the {small:,}-file night: upserts, no duplicate rows "
                      "(checked)", f"{rerun:.1f} s, {small / rerun:,.0f} files/s"],
                     ["file mix (fitsgen.py)", mix],
                     ["data generated", f"{total_bytes / 1e6:.0f} MB in {big:,} files (deleted afterwards)"],
                     ["load average at start / end", f"{load_start} / {load_end}"]]}],
        "plots": [PLOT],
        "notes": NOTES,
        "raw_seconds": {f"{m}:{n}": v for (m, n), v in sorted(times.items())},
    }
    benchlib.write_result(args.out, result, started)


NOTES = """\
**Method.** `tools/bench/fitsgen.py` writes N small files (64x64 pixels, about 130 header cards; 60% single
images with a TAN WCS, 10% bias frames without WCS, 10% multi-extension frames with 4 image extensions,
10% fpack-compressed `.fits.fz`, 10% `.fits.gz`); every file has its own OBJECT, DATE-OBS and SEQNUM.
Nights of 1,000 to 10,000 files are hard links to the same pool, so every N reads warm files from the
page cache: the figures are CPU cost, not disk speed. Postgres is a throwaway container of the project's
image (`downlink/postgres`, default settings, fsync on) on its own internal network; `observations` is
emptied before every (a) and (b) run, so every run is a first ingest.
Each repetition is one container of the astro image (`tools/bench/ingest_inner.py`) that runs every mode
for every N, interleaved, so all modes see the same machine load. (b) is the step's own command,
`downlink index --night ...`, run as a child process there and timed around it; "excl. start-up" subtracts
the median time of the same command on an empty night (Python start, astropy imports, connecting and
checking migrations). (a) and (c) are loops timed inside that process, with no interpreter start-up, so
"excl. start-up" is their like-for-like figure. Once per repetition the step also runs exactly as the chain
runs it, in a fresh container (`docker run ... downlink index`), timed from the host: that figure includes
Docker creating the container, which on a loaded machine costs seconds.

**What bounds it.** The database side was already bulk: the step COPYs every row into a temporary table
and upserts from it in one transaction, so a rerun updates rather than duplicates (checked above). The
cost is per file and in Python: astropy parsing every header card (the full header is stored as jsonb),
building a WCS for the frame centre, and the date. Per-file cost is flat in N (the plot): nothing grows
with the night but the one COPY. The naive loop (a) does the same per-file work and pays a COMMIT per
file on top, so (b) can only be as many times faster as that COMMIT is dearer than reading a file; with
astropy's reader that is nowhere near 10x. The 1,000 files/s target needs an idle machine at least
(see the load averages): on this shared one everything ran several times slower than when idle.

**Tuning (before/after, `fitsmeta.describe`, same results).** Measured while the machine was shared (load
16-24), per file, 500 files, the step's read against astropy opening the file and reading its headers:
before, 49.4 ms vs 12.2 ms (the step's read at 25% of the bare read's speed: WCS 19.3 ms, card values
6.3 ms, date 2.1 ms); after, 4.9 ms vs 2.1 ms (43%). The changes: the WCS is built from the header's WCS
cards alone (astropy's `WCS()` serialises and re-parses whatever header it is given several times), no
`.celestial` copy when the WCS is already (lon, lat), no WCS attempt without CTYPE; ISO dates go through
erfa, the UTC calendar astropy.time uses, instead of astropy.time; and card parsing sees a plain snapshot
of `astropy.io.fits.conf` during `describe` (every card read two settings through astropy's config
machinery: a fifth of the time). The rows are identical for the 12 real files of `shared/data/fits`
and the benchmark's files; `tests/unit/astro/test_fast_paths.py` checks each shortcut against the call it
replaces.

**Issue 14.** The step now does more per file (dates read in TIMESYS with astropy.time, every frame
transformed to ICRS with astropy.coordinates, the footprint's four corners, unparsable cards kept raw,
a completeness check) and less elsewhere: files are described by a process pool (one process per CPU),
each file's headers are parsed once (`fitsmeta.Cards`), and the sha256 is no longer computed by index
but read from `raw/<night>/.sha256.json`, which the archive step writes from the bytes it copies (the
download step hashes while it writes). The footprint's diagonal uses astropy's `angular_separation`
on plain arrays (two `SkyCoord.separation` calls per file had cost two thirds of the read). The
bytes figure is download (a directory source) + archive + index over 50 frames of 42 MB, against
`sha256sum` over the same files in the same container, both from the page cache; the chain writes every
byte twice (staging, then the archive volume, each fsynced), which `sha256sum` does not. `fitsio`
(Debian's python3-fitsio) was considered for header reads and not adopted: the header JSON must hold
astropy's reading of each value (the tests compare with astropy), so astropy parses the cards anyway.
"""

if __name__ == "__main__":
    main()
