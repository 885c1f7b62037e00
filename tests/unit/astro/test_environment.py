"""The astro image runs IRAF and PyRAF unattended, whatever environment the caller gives it."""
import subprocess

import pytest

IMSTAT = ["/usr/local/bin/downlink-env", "downlink", "iraf-imstat", "--image", "dev$pix"]


def run(cmd, env):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "env",
    [
        {},  # cron-like: no USER, no HOME, no TERM
        {"PATH": "/usr/local/bin:/usr/bin:/bin"},
        {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", "USER": ""},  # unwritable HOME
    ],
    ids=["empty", "path-only", "unwritable-home"],
)
def test_pyraf_imstatistics_runs_with_a_bare_environment(env):
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    out = run(IMSTAT, env)
    assert out.returncode == 0, out.stderr
    assert "npix = 262144" in out.stdout


def test_iraf_cl_script_runs_with_a_bare_environment(tmp_path):
    script = tmp_path / "stat.cl"
    script.write_text("imstatistics dev$pix\nlogout\n")
    out = run(["/usr/local/bin/downlink-env", "irafcl", "-f", str(script)], {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "262144" in out.stdout


def test_env_wrapper_sets_what_iraf_needs():
    out = run(["/usr/local/bin/downlink-env", "sh", "-c", 'echo "$USER|$HOME|$TERM|$PYRAF_NO_DISPLAY"; test -w "$HOME"'], {"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    user, home, term, nodisplay = out.stdout.strip().split("|")
    assert user and home not in ("", "/") and term and nodisplay == "1"
