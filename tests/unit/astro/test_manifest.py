"""make-manifest: every data file of a folder with its size and sha256, written atomically."""
import hashlib
import json
import os

import pytest

from downlink import StepError, cli
from downlink.manifest import write_manifest


@pytest.fixture
def night_folder(tmp_path):
    folder = tmp_path / "2026-11-24"
    folder.mkdir()
    (folder / "b.fits").write_bytes(b"B" * 2880)
    (folder / "a.fits").write_bytes(b"A" * 5760)
    (folder / "notes.txt").write_text("log\n")
    (folder / ".hidden").write_text("skip me")
    (folder / "sub").mkdir()
    return folder


def test_lists_regular_files_sorted_with_size_and_hash(night_folder):
    result = write_manifest(str(night_folder))
    assert result["night"] == "2026-11-24"
    assert [e["name"] for e in result["files"]] == ["a.fits", "b.fits", "notes.txt"]
    for entry in result["files"]:
        assert entry["size"] == os.path.getsize(night_folder / entry["name"])
        assert entry["sha256"] == hashlib.sha256((night_folder / entry["name"]).read_bytes()).hexdigest()
    assert json.loads((night_folder / "manifest.json").read_text()) == result


def test_rerun_does_not_list_the_manifest_and_follows_changes(night_folder):
    first = write_manifest(str(night_folder))
    (night_folder / "b.fits").write_bytes(b"C" * 2880)
    second = write_manifest(str(night_folder))
    assert [e["name"] for e in second["files"]] == [e["name"] for e in first["files"]]
    assert second["files"][1]["sha256"] != first["files"][1]["sha256"]
    assert sorted(os.listdir(night_folder)) == [".hidden", "a.fits", "b.fits", "manifest.json", "notes.txt", "sub"]


@pytest.mark.parametrize("name", ["incoming", "2026-13-01", "2026-11-24-extra"])
def test_night_is_null_unless_the_folder_is_a_date(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    assert write_manifest(str(folder)) == {"night": None, "files": []}


def test_missing_folder_is_a_step_error(tmp_path, capsys):
    with pytest.raises(StepError, match="not a directory"):
        write_manifest(str(tmp_path / "nothere"))
    assert cli.main(["make-manifest", str(tmp_path / "nothere")]) == 1
    assert "make-manifest: error:" in capsys.readouterr().err


def test_cli_writes_the_manifest_and_has_help(night_folder, capsys):
    assert cli.main(["make-manifest", str(night_folder)]) == 0
    assert len(json.loads((night_folder / "manifest.json").read_text())["files"]) == 3
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["make-manifest", "--help"])
    assert exc.value.code == 0 and "sha256" in capsys.readouterr().out
