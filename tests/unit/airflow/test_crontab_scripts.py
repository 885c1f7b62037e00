"""`import-crontab --scripts DIR` (make import-crontab SCRIPTS=DIR): the crontab's scripts copied
into images/astro/scripts/ and called by name; a different file of the same name is never
overwritten; each script not found is listed with its line. (The golden: crontab/scripts.*.)"""
import io
import os
import stat

import pytest
import yaml

from downlink_airflow.crontab import cli  # noqa: E402
from downlink_airflow.crontab.scripts import rewrite  # noqa: E402


def write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    parser = __import__("argparse").ArgumentParser()
    sub = parser.add_subparsers()
    cli.add_parser(sub)
    args = parser.parse_args(["import-crontab", *argv])
    return cli.run(args, stdout=out, stderr=err), out.getvalue(), err.getvalue()


@pytest.fixture
def team(tmp_path):
    src, into = tmp_path / "bin", tmp_path / "images" / "astro" / "scripts"
    write(src / "reduce.py", "#!/usr/bin/python3\nprint('r')\n", 0o750)
    write(src / "plain.py", "print('no #!')\n", 0o644)
    write(src / "qc.sh", "#!/bin/sh\necho new\n", 0o755)
    write(into / "qc.sh", "#!/bin/sh\necho old\n", 0o755)
    crontab = write(tmp_path / "crontab", "30 7 * * * /home/obs/bin/reduce.py --night yesterday\n"
                    "0 8 * * * python3 /home/obs/bin/plain.py\n0 9 * * * /home/obs/bin/qc.sh\n"
                    "0 10 * * * ~/bin/gone.sh -v\n")
    return tmp_path, src, into, crontab


def test_scripts_are_copied_executable_and_called_by_name(team):
    _, src, into, crontab = team
    code, out, err = run([str(crontab), "--scripts", str(src), "--scripts-into", str(into)])
    assert code == 0, err
    commands = {e["name"]: e["command"] for e in yaml.safe_load(out)["scripts"]}
    assert commands == {"reduce": "reduce.py --night yesterday", "plain": "python3 /opt/downlink/scripts/plain.py",
                        "qc": "/home/obs/bin/qc.sh", "gone": "~/bin/gone.sh -v"}
    assert (into / "reduce.py").read_text() == (src / "reduce.py").read_text()
    assert stat.S_IMODE(os.stat(into / "reduce.py").st_mode) == 0o751  # its mode, and executable
    assert os.access(into / "plain.py", os.X_OK)
    assert (into / "qc.sh").read_text() == "#!/bin/sh\necho old\n", "a different file is never overwritten"
    assert f"line 3: NOT copied: images/astro/scripts/qc.sh exists and differs from {src}/qc.sh" in err
    assert "line 4: script not found in the scripts folder: ~/bin/gone.sh" in err
    assert not list(into.glob("*.tmp"))


def test_nothing_is_copied_when_the_import_fails(team):
    tmp_path, src, into, _ = team
    crontab = write(tmp_path / "bad", "30 7 * * * /home/obs/bin/reduce.py\n@reboot /home/obs/bin/reduce.py\n")
    code, out, err = run([str(crontab), "--scripts", str(src), "--scripts-into", str(into)])
    assert code == 1 and out == ""
    assert not (into / "reduce.py").exists()


def test_a_missing_scripts_folder_is_bad_usage(team):
    tmp_path, _, into, crontab = team
    code, _, err = run([str(crontab), "--scripts", str(tmp_path / "nope")])
    assert code == 2 and "--scripts" in err and "no such folder" in err


@pytest.mark.parametrize("command, word, keep, expected", [
    ("/h/x.py --n 1", "/h/x.py", False, "x.py --n 1"),
    ("python3 -u /h/x.py --n 1", "/h/x.py", False, "x.py --n 1"),
    ("/usr/bin/python3 /h/x.py", "/h/x.py", True, "/usr/bin/python3 /opt/downlink/scripts/x.py"),
    ("cd /h && nice '/h/x.py' > /dev/null", "/h/x.py", False, "cd /h && nice x.py > /dev/null"),
    ("/h/x.py.bak /h/x.py", "/h/x.py", False, "/h/x.py.bak x.py"),
    ("echo nothing", "/h/x.py", False, "echo nothing"),
])
def test_rewrite(command, word, keep, expected):
    assert rewrite(command, word, "x.py", keep) == expected
