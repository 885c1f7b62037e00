import json
import os

import pytest

from downlink import cli, envcheck
from downlink.outputs import write_json


def test_write_json_creates_folders_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "out.json"
    write_json(str(target), {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}
    assert os.listdir(target.parent) == ["out.json"]


def test_write_json_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(str(target), {"old": True})
    with pytest.raises(TypeError):
        write_json(str(target), {"bad": object()})
    assert json.loads(target.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["out.json"]


def test_iraf_version_is_read_from_its_setup_file(tmp_path):
    f = tmp_path / "zzsetenv.def"
    f.write_text('set\tarch\t\t= ".linux64"\nset\tversion\t\t= "Community IRAF V2.17"\n')
    assert envcheck.iraf_version(str(f)) == "Community IRAF V2.17"


def test_every_step_has_help(capsys):
    parser = cli.build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for step in ("versions", "iraf-imstat", "store-imstat", "migrate"):
        assert step in out


def test_step_errors_exit_1_with_one_line(tmp_path, capsys):
    missing = tmp_path / "nothere.json"
    assert cli.main(["store-imstat", "--in", str(missing), "--run-id", "r"]) == 1
    err = capsys.readouterr().err
    assert "store-imstat: error:" in err and str(missing) in err


def test_written_json_is_readable_by_other_users(tmp_path):
    target = tmp_path / "m.json"
    write_json(str(target), {})
    assert target.stat().st_mode & 0o044 == 0o044
