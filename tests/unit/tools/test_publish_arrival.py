"""tools/publish_arrival.py: FILE is what gets published (not a sample frame), under its own name
or --name, and the manifest lists it. The container is replaced by the same script run here, on
a folder standing in for the archive volume, with a stub of downlink.manifest (run on the host:
python -m pytest tests/unit/tools)."""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TOOL = ROOT / "tools" / "publish_arrival.py"
STUB = """
import hashlib, json, os
def write_manifest(folder):
    files = []
    for n in sorted(os.listdir(folder)):
        if n != "manifest.json" and not n.startswith("."):
            data = open(os.path.join(folder, n), "rb").read()
            files.append({"name": n, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    json.dump({"files": files}, open(os.path.join(folder, "manifest.json"), "w"))
"""


@pytest.fixture
def tool(tmp_path, monkeypatch):
    """The tool's module (from this checkout, by its path), with `docker run` replaced by running
    the container's script here; returns (module, archive folder, the docker commands run)."""
    spec = importlib.util.spec_from_file_location("publish_arrival_under_test", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stub = tmp_path / "stub" / "downlink"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "manifest.py").write_text(STUB)
    archive = tmp_path / "archive"
    sample = archive / "2026-11-24"
    sample.mkdir(parents=True)
    (sample / "sample-frame.fits").write_bytes(b"SAMPLE" * 100)
    monkeypatch.setattr(module, "ARCHIVE", str(archive))
    calls = []
    real_run = subprocess.run

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        assert cmd[:2] == ["docker", "run"] and f"downlink-archive-src:{archive}" in cmd
        local = [sys.executable] + cmd[cmd.index("python3") + 1:]
        return real_run(local, env={**os.environ, "PYTHONPATH": str(stub.parent)}, **kwargs)

    monkeypatch.setattr(module.subprocess, "run", fake_run)
    return module, archive, calls


def manifest(folder):
    return {f["name"]: f for f in json.loads((folder / "manifest.json").read_text())["files"]}


def test_the_file_given_is_published_under_its_own_name(tool, tmp_path, capsys):
    module, archive, calls = tool
    mine = tmp_path / "MY frame.fits"
    mine.write_bytes(b"MINE" * 1000)
    module.main(["--project", "downlink", "--tag", "t1", "--night", "2026-12-01", str(mine)])
    published = archive / "2026-12-01" / "MY frame.fits"
    assert published.read_bytes() == mine.read_bytes()
    entry = manifest(archive / "2026-12-01")["MY frame.fits"]
    assert entry["sha256"] == hashlib.sha256(mine.read_bytes()).hexdigest()
    assert "-i" in calls[0] and "downlink/astro:t1" in calls[0]
    assert float(capsys.readouterr().out.strip()) > 0
    assert not [p for p in (archive / "2026-12-01").iterdir() if p.name.startswith(".")]


def test_name_renames_and_sample_keeps_the_old_behaviour(tool, tmp_path):
    module, archive, _ = tool
    mine = tmp_path / "a.fits"
    mine.write_bytes(b"A" * 10)
    module.main(["--tag", "t", "--night", "2026-12-02", "--name", "b.fits", str(mine)])
    assert (archive / "2026-12-02" / "b.fits").read_bytes() == b"A" * 10
    module.main(["--tag", "t", "--night", "2026-12-02", "--sample", "c.fits"])
    assert (archive / "2026-12-02" / "c.fits").read_bytes() == b"SAMPLE" * 100
    # The e2e test and the latency benchmark call publish() without a file: a sample copy.
    module.publish("downlink", "t", "d.fits", "2026-12-02")
    assert set(manifest(archive / "2026-12-02")) == {"b.fits", "c.fits", "d.fits"}


@pytest.mark.parametrize("argv", [[], ["missing.fits"], ["--sample", "x.fits", "also.fits"], ["--sample", "../x.fits"]])
def test_bad_usage_exits_2_before_any_container(tool, argv, tmp_path, monkeypatch):
    module, _, calls = tool
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    assert exc.value.code == 2 and calls == []
