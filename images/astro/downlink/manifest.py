"""`downlink make-manifest DIR`: write DIR/manifest.json listing every file with size and sha256.

This is the manifest the download step reads. Publish a folder of files as a night by running it
in that night's folder.
"""
import os

from downlink import StepError, layout
from downlink.checksum import sha256_file
from downlink.outputs import write_json

NAME = "manifest.json"


def add_parser(sub):
    p = sub.add_parser("make-manifest", help="write DIR/manifest.json (name, size, sha256 of each file)",
                       description=__doc__)
    p.add_argument("directory")
    return p


def write_manifest(directory):
    if not os.path.isdir(directory):
        raise StepError(f"{directory}: not a directory")
    names = [n for n in layout.files_in(directory) if n != NAME]
    base = os.path.basename(os.path.normpath(directory))
    try:
        night = str(layout.parse_night(base))
    except StepError:
        night = None
    manifest = {"night": night, "files": [
        {"name": n, "size": os.path.getsize(os.path.join(directory, n)), "sha256": sha256_file(os.path.join(directory, n))}
        for n in names]}
    write_json(os.path.join(directory, NAME), manifest)
    return manifest


def run(args):
    manifest = write_manifest(args.directory)
    print(f"{os.path.join(args.directory, NAME)}: {len(manifest['files'])} files")
    return 0
