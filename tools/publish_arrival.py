#!/usr/bin/env python3
"""Publish one new file in a stack's development archive, as the telescope's transfer would: FILE
(or, with --sample, a copy of a sample-night frame) appears under <night>/<name>, then the
night's manifest is rewritten to list it (both renamed into place, so the archive server never
serves half a file).

Prints (and returns) the host time, in seconds since the epoch, at which the manifest was
published: the moment the file counts as arrived. Used by the arrivals e2e test and the latency
benchmark (with sample copies), and by hand with a file of your own.

Usage: tools/publish_arrival.py [--project P] [--tag T] [--night YYYY-MM-DD] [--name NAME] FILE
       tools/publish_arrival.py [--project P] [--tag T] [--night YYYY-MM-DD] --sample NAME
"""
import argparse
import datetime
import os
import subprocess

# Runs in the astro image, as its user (the archive volume's owner).
SCRIPT = r"""
import glob, os, shutil, sys, time
from downlink.manifest import write_manifest
night, name, sample, root = sys.argv[1:5]
folder = f"{root}/{night}"
os.makedirs(folder, exist_ok=True)
tmp = os.path.join(folder, "." + name)
if sample == "-":
    # The file's bytes come on stdin (no bind mount: the engine may not see the caller's files).
    with open(tmp, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out)
else:
    frames = sorted(glob.glob(f"{root}/{sample}/*.fits"))
    if not frames:
        sys.exit(f"no sample frames in {root}/{sample}")
    shutil.copyfile(frames[-1], tmp)
os.replace(tmp, os.path.join(folder, name))
write_manifest(folder)
print(repr(time.time()))
"""
ARCHIVE = "/srv/archive"


def current_night(now=None):
    """The night the arrivals watcher treats as current (plugins/downlink_airflow/arrivals.py)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return str((now - datetime.timedelta(hours=12)).date())


def publish(project, tag, name, night=None, sample_night=None, source=None):
    """Publish `source` (a host file's path) as <night>/<name>; without a source, a copy of the
    sample night's last frame."""
    night = night or current_night()
    sample_night = sample_night or os.environ.get("DOWNLINK_SAMPLE_NIGHT", "2026-11-24")
    data = None
    if source is not None:
        with open(source, "rb") as fh:
            data = fh.read()
    out = subprocess.run(
        ["docker", "run", "--rm", *(["-i"] if data is not None else []), "--network", "none",
         "-v", f"{project}-archive-src:{ARCHIVE}", f"downlink/astro:{tag}", "python3", "-c", SCRIPT,
         night, name, "-" if data is not None else sample_night, ARCHIVE],
        check=True, capture_output=True, input=data if data is not None else b"", timeout=120)
    return float(out.stdout.decode().strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", help="the file to publish (its name in the archive: --name, else its own)")
    p.add_argument("--name", help="the name to publish FILE under (default: FILE's own name)")
    p.add_argument("--sample", metavar="NAME", help="instead of FILE: publish a copy of a sample-night frame as NAME")
    p.add_argument("--project", default=os.environ.get("DOWNLINK_PROJECT", "downlink"))
    p.add_argument("--tag", default=None, help="the astro image's tag (default: DOWNLINK_TAG of the stack's .env)")
    p.add_argument("--night", default=None, help="the night to publish into (default: the current night)")
    args = p.parse_args(argv)
    if (args.file is None) == (args.sample is None):
        p.error("give either FILE or --sample NAME")
    if args.file is not None and not os.path.isfile(args.file):
        p.error(f"{args.file}: no such file (to publish a copy of a sample frame: --sample NAME)")
    name = args.sample or args.name or os.path.basename(args.file)
    if "/" in name or name.startswith("."):
        p.error(f"{name!r}: a file name, not a path nor a hidden name")

    import dagrun  # only now: --help needs no stack

    tag = args.tag or dagrun.setting("DOWNLINK_TAG")
    print(publish(args.project, tag, name, args.night, source=args.file if args.sample is None else None))


if __name__ == "__main__":
    main()
