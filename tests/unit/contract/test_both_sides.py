"""The data-volume contract, seen from both images on the same files: what the arrivals trigger
(Airflow image, downlink_airflow.arrivals) takes as published and as done must be what the steps
(astro image: download's source listing, the quarantine records they write) publish and record.
A naming change on one side only fails here. Runs on the host with the images of this tree
(make test-unit-contract); each side runs with --network none over one shared folder."""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# The Makefile exports the tag it built (DOWNLINK_TAG); by hand, this tree's.
TAG = os.environ.get("DOWNLINK_TAG") or subprocess.run([os.path.join(ROOT, "tools", "image-tag.sh")], capture_output=True, text=True,
                                                       check=True).stdout.strip()
NIGHT = "2026-11-24"
# Names a source folder may hold: data, the manifest, temporary and partial files, a data file
# that looks like a record, one with spaces, a folder.
SOURCE_FILES = ["a.fits", "b.fits.fz", "notes.json", "with space.fits", "manifest.json.bak", ".hidden.fits",
                "c.fits.part", ".c.fits.1234.part"]

STEPS = f"""
import json, os
os.environ["DOWNLINK_DATA"] = "/work/data"
from downlink import download, layout, quarantine
folder = "/work/source/{NIGHT}"
listed = [e["name"] for e in download.DirectorySource("/work/source").manifest("{NIGHT}")]
quarantine.quarantine("{NIGHT}", "bad.fits", "download", "not FITS")
quarantine.quarantine("{NIGHT}", "../evil.fits", "verify", "unsafe name")
quarantine.quarantine("{NIGHT}", "notes.json", "download", "not FITS")
print(json.dumps({{"listed": listed, "raw": layout.files_in(layout.night_dir("raw", "{NIGHT}")),
                  "quarantined": sorted(r["filename"] for r in quarantine.records("{NIGHT}"))}}))
"""

AIRFLOW = f"""
import json
from downlink_airflow import arrivals
print(json.dumps({{"listed": sorted(arrivals.source_names("/work/source", "{NIGHT}")),
                  "held": sorted(arrivals.held_names("/work/data", "{NIGHT}"))}}))
"""


def side(image, python, work, *code):
    run = subprocess.run(["docker", "run", "--rm", "--network", "none", "-u", f"{os.getuid()}:{os.getgid()}",
                          "-e", "HOME=/tmp", "-v", f"{work}:/work", "--entrypoint", python, f"downlink/{image}:{TAG}", "-c", *code],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{image}: {run.stderr[-3000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture
def work(tmp_path):
    source = tmp_path / "source" / NIGHT
    source.mkdir(parents=True)
    for name in SOURCE_FILES:
        (source / name).write_bytes(b"x" * 10)
    (source / "sub").mkdir()
    raw = tmp_path / "data" / "raw" / NIGHT
    raw.mkdir(parents=True)
    for name in ("a.fits", ".a.fits.99.part", "z.fits.part"):
        (raw / name).write_bytes(b"y")
    os.chmod(tmp_path, 0o777)
    return tmp_path


def test_both_sides_list_the_same_files_and_read_the_same_quarantine_records(work):
    steps = side("astro", "python3", str(work), STEPS)
    airflow = side("airflow", "python", str(work), AIRFLOW)
    # What the source publishes (no manifest): the same names on both sides, and never a temporary,
    # partial or hidden file.
    assert sorted(steps["listed"]) == airflow["listed"] == ["a.fits", "b.fits.fz", "manifest.json.bak", "notes.json", "with space.fits"]
    # What the data volume is done with: archived (the steps' raw/ listing) or quarantined (the
    # records the steps wrote, an unsafe name and a data file named like a record included).
    assert airflow["held"] == sorted(set(steps["raw"]) | set(steps["quarantined"]))
    assert steps["quarantined"] == ["../evil.fits", "bad.fits", "notes.json"]


def test_both_sides_read_a_manifest_alike(work):
    folder = work / "source" / NIGHT
    entry = {"size": 10, "sha256": "0" * 64}
    (folder / "manifest.json").write_text(json.dumps({"files": [{"name": "a.fits", **entry}, {"name": "only-listed.fits", **entry}]}))
    steps = side("astro", "python3", str(work), STEPS)
    airflow = side("airflow", "python", str(work), AIRFLOW)
    assert sorted(steps["listed"]) == airflow["listed"] == ["a.fits", "only-listed.fits"]


def test_both_images_carry_the_same_contract_module():
    code = "import downlink_data, hashlib; print(hashlib.sha256(open(downlink_data.__file__, 'rb').read()).hexdigest())"
    with open(os.path.join(ROOT, "images", "astro", "downlink_data", "downlink_data.py"), "rb") as fh:
        import hashlib

        want = hashlib.sha256(fh.read()).hexdigest()
    for image, python in (("astro", "python3"), ("airflow", "python")):
        run = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", python, f"downlink/{image}:{TAG}", "-c", code],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == want, f"{image}: downlink_data differs from the tree's"
