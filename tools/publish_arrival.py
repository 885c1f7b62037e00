#!/usr/bin/env python3
"""Publish one new file in a stack's development archive, as the telescope's transfer would: a
copy of a sample-night frame appears under <night>/<name>, then the night's manifest is rewritten
to list it (both renamed into place, so the archive server never serves half a file).

Prints (and returns) the host time, in seconds since the epoch, at which the manifest was
published: the moment the file counts as arrived. Used by the arrivals e2e test and the latency
benchmark.

Usage: tools/publish_arrival.py [--project P] [--tag T] [--night YYYY-MM-DD] NAME
"""
import argparse
import datetime
import os
import subprocess

# Runs in the astro image, as its user (the archive volume's owner).
SCRIPT = r"""
import glob, os, shutil, sys, time
from downlink.manifest import write_manifest
night, name, sample = sys.argv[1:4]
folder = f"/srv/archive/{night}"
os.makedirs(folder, exist_ok=True)
frames = sorted(glob.glob(f"/srv/archive/{sample}/*.fits"))
if not frames:
    sys.exit(f"no sample frames in /srv/archive/{sample}")
tmp = os.path.join(folder, "." + name)
shutil.copyfile(frames[-1], tmp)
os.replace(tmp, os.path.join(folder, name))
write_manifest(folder)
print(repr(time.time()))
"""


def current_night(now=None):
    """The night the arrivals watcher treats as current (plugins/downlink_airflow/arrivals.py)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return str((now - datetime.timedelta(hours=12)).date())


def publish(project, tag, name, night=None, sample_night=None):
    night = night or current_night()
    sample_night = sample_night or os.environ.get("DOWNLINK_SAMPLE_NIGHT", "2026-11-24")
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{project}-archive-src:/srv/archive",
         f"downlink/astro:{tag}", "python3", "-c", SCRIPT, night, name, sample_night],
        check=True, capture_output=True, text=True, timeout=120)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    import dagrun

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--project", default=os.environ.get("DOWNLINK_PROJECT", "downlink"))
    p.add_argument("--tag", default=None)
    p.add_argument("--night", default=None)
    args = p.parse_args(argv)
    print(publish(args.project, args.tag or dagrun.setting("DOWNLINK_TAG"), args.name, args.night))


if __name__ == "__main__":
    main()
