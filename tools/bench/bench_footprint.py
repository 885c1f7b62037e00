#!/usr/bin/env python3
"""Issue 7 item 5: footprint. Idle memory of the whole stack (`docker stats --no-stream`), the time
of `make up` cold (no images of the tag: built from the layer cache) and warm (images built, stack
down then up), each until the sample chain is green, the images' sizes, and one full sample
night's wall time (daily_chain on the sample night, trigger to success).

Usage: python tools/bench/bench_footprint.py [--quick] [--out build/bench]
"""
import os
import re
import subprocess
import time
import uuid

from stack import ROOT, BenchStack, iso_seconds, parse_args, write_result  # noqa: E402

IMAGES = ("airflow", "astro", "postgres", "mail", "archive-server", "docker-proxy")
SAMPLE_NIGHT = os.environ.get("DOWNLINK_SAMPLE_NIGHT", "2026-11-24")
MEMORY_TARGET_GB = 3.0
UNITS = {"b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "kb": 1e3, "mb": 1e6, "gb": 1e9}


def to_bytes(text):
    m = re.match(r"([\d.]+)\s*([a-zA-Z]+)", text.strip())
    return float(m.group(1)) * UNITS[m.group(2).lower()]


def build(tag):
    t0 = time.monotonic()
    subprocess.run([os.path.join(ROOT, "tools", "build-images.sh"), tag], cwd=ROOT, check=True, capture_output=True)
    return time.monotonic() - t0


def sample_chain(s):
    """(seconds from trigger to success, run) of daily_chain on the sample night."""
    t0, run = s.run_dag("daily_chain", f"bench_{uuid.uuid4().hex[:8]}", {"night": SAMPLE_NIGHT})
    if run["state"] != "success":
        raise RuntimeError(f"daily_chain on {SAMPLE_NIGHT}: {run['state']}")
    return iso_seconds(run["end_date"]) - t0, run


def idle_memory(s, settle=45):
    """{container: bytes} of the stack's running containers, after `settle` seconds of quiet."""
    time.sleep(settle)
    names = subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project={s.project}",
                            "--format", "{{.Names}}"], capture_output=True, text=True, check=True).stdout.split()
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", *names],
                         capture_output=True, text=True, check=True).stdout
    usage = {}
    for line in out.splitlines():
        name, mem = line.split("\t")
        usage[name.replace(s.project + "-", "").rsplit("-", 1)[0]] = to_bytes(mem.split("/")[0])
    return usage


def image_sizes(tag):
    sizes = {}
    for name in IMAGES:
        out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", f"downlink/{name}:{tag}"],
                             capture_output=True, text=True, check=True).stdout
        sizes[name] = int(out.strip())
    return sizes


def main():
    args = parse_args(__doc__.split("\n\n")[0])
    started = time.time()
    # Cold: a tag no image has yet (as after a new commit); the images are built from the layer
    # cache. A truly fresh machine (empty cache, debootstrap, wheelhouse) is out of scope here.
    cold_tag = f"bench-cold-{uuid.uuid4().hex[:8]}"
    os.environ["DOWNLINK_TAG"] = cold_tag
    s = BenchStack("footprint", build=False).guard()
    cold_build = build(cold_tag)
    s.down()
    try:
        t0 = time.monotonic()
        s.up()
        up_cold = time.monotonic() - t0
        night_first, first_run = sample_chain(s)
        cold_total = cold_build + up_cold + night_first
        s.wait_quiet()  # the start-up arrivals run, if any, is over too
        memory = idle_memory(s, settle=20 if args.quick else 45)
        # Warm: images built, stack down (volumes kept, as `make down`), then `make up` again.
        s.compose("down", "--remove-orphans")
        t0 = time.monotonic()
        warm_build = build(cold_tag)
        s.up()
        up_warm = time.monotonic() - t0
        night_rerun, _ = sample_chain(s)
        warm_total = up_warm + night_rerun
        sizes = image_sizes(cold_tag)
    finally:
        s.down()
        subprocess.run(["docker", "rmi", *[f"downlink/{n}:{cold_tag}" for n in IMAGES]], capture_output=True)
    total_mem = sum(memory.values())
    gb = total_mem / 1e9
    run_wall = iso_seconds(first_run["end_date"]) - iso_seconds(first_run["start_date"])
    result = {
        "name": "footprint",
        "order": 5,
        "title": "Footprint: memory, make up time, image sizes, one sample night",
        "targets": [
            {"target": f"idle memory of the whole stack <= {MEMORY_TARGET_GB:g} GB",
             "measured": f"{gb:.2f} GB over {len(memory)} containers (docker stats --no-stream)",
             "ratio": f"{gb / MEMORY_TARGET_GB:.2f}x the budget", "met": gb <= MEMORY_TARGET_GB},
            {"target": "make up, warm (images built; down, then up + sample chain green)",
             "measured": f"{warm_total:.0f} s (build check {warm_build:.0f} s, up {up_warm - warm_build:.0f} s, "
                         f"chain {night_rerun:.0f} s)", "ratio": "-", "met": None},
            {"target": "make up, cold (no images of the tag, from the layer cache; fresh volumes)",
             "measured": f"{cold_total:.0f} s (build {cold_build:.0f} s, up {up_cold:.0f} s, chain {night_first:.0f} s)",
             "ratio": "-", "met": None},
            {"target": "one full sample night (daily_chain, trigger to success)",
             "measured": f"{night_first:.0f} s (the run itself {run_wall:.0f} s)", "ratio": "-", "met": None},
        ],
        "tables": [
            {"caption": "Idle memory per container (docker stats --no-stream, after the sample chain and "
                        f"{20 if args.quick else 45} s of quiet)",
             "columns": ["container", "MiB"],
             "rows": [[k, f"{v / 2 ** 20:.0f}"] for k, v in sorted(memory.items(), key=lambda kv: -kv[1])]
             + [["total", f"{total_mem / 2 ** 20:.0f}"]]},
            {"caption": "Image sizes (docker image inspect; the images share their Debian base layers)",
             "columns": ["image", "MB"],
             "rows": [[f"downlink/{k}", f"{v / 1e6:.0f}"] for k, v in sizes.items()]},
            {"caption": "make up, step by step (seconds)",
             "columns": ["case", "build", "compose up --wait", "sample chain (trigger to success)", "total"],
             "rows": [["cold", f"{cold_build:.0f}", f"{up_cold:.0f}", f"{night_first:.0f}", f"{cold_total:.0f}"],
                      ["warm", f"{warm_build:.0f}", f"{up_warm - warm_build:.0f}", f"{night_rerun:.0f}",
                       f"{warm_total:.0f}"]]},
        ],
        "plots": [],
        "notes": (
            "**Method.** One stack of its own (`downlink-bench-footprint`). *Cold*: a fresh image tag, so "
            "`tools/build-images.sh` builds every image again from Docker's layer cache (as after a new "
            "commit), then `docker compose up --wait` on empty volumes, then daily_chain on the sample night "
            "through the REST API until success. *Warm*: `docker compose down` (volumes kept, as `make down`), "
            "then the cached build check, up and the sample chain again (a rerun: the night is already "
            "held, so download skips and index upserts). A truly fresh machine (no layer cache: debootstrap, "
            "wheelhouse download, apt in every image) is out of scope here; the last measured figure for "
            "it was about 5 min for `make up`. Idle memory is `docker stats --no-stream` of the project's "
            "running containers once the chain is done and the stack has been quiet for a while; it "
            "includes the page cache charged to each container (cgroup v1). The full sample night is the "
            "first run on fresh volumes: it downloads, archives and indexes all 29 frames and runs every "
            "step. With the arrivals watcher on, the sample night (when it is one of the two most recent "
            "nights) is also ingested by an `arrivals` run at start-up; it shares the one-slot ingest pool "
            "with daily_chain, so the two never download at once."
        ),
    }
    write_result(args.out, result, started)


if __name__ == "__main__":
    main()
