"""`downlink STEP` imports only that step's module: start-up is paid by every step of every chain."""
import subprocess
import sys

from downlink import cli


def test_every_subcommand_is_in_the_full_parser():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMANDS)


def test_a_step_imports_only_its_own_module():
    code = ("import sys; from downlink import cli; cli.build_parser('archive').parse_args(['archive', '--night', '2026-11-24']);"
            "print(sorted(m for m in sys.modules if m.startswith('downlink.')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = eval(out)
    assert "downlink.archive" in loaded
    assert not {"downlink.report", "downlink.make_night", "downlink.calibrate", "downlink.sources"} & set(loaded)


def test_help_still_lists_every_step(capsys):
    try:
        cli.main(["--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    assert all(c in text for c in cli.COMMANDS)
