"""tools/bootstrap.sh's choice of engine and its message when something is missing, on a faked
host: a PATH holding only the tools the script needs, plus fakes of `id`, `podman`, `dockerd` and
`docker` as each case wants (run on the host: python -m pytest tests/unit/tools)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BOOTSTRAP = ROOT / "tools" / "bootstrap.sh"
REAL_TOOLS = ("bash", "sh", "dirname", "cat", "grep", "sed", "awk", "seq", "sleep", "mkdir", "rm", "stat",
              "chmod", "sha256sum", "cut", "head", "tail", "env", "setsid", "kill")


def fake_host(tmp_path, uid=1000, have=(), docker_answers=False):
    """A bin/ directory: the real tools above, a fake `id -u` saying `uid`, and fakes of the
    engine binaries in `have` (docker answers `version`/`info` only if docker_answers)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in REAL_TOOLS:
        real = shutil.which(tool)
        if real:
            (bin_dir / tool).symlink_to(real)
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    for name in have:
        body = f"exit {0 if (name != 'docker' or docker_answers) else 1}"
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    for f in bin_dir.iterdir():
        if not f.is_symlink():
            f.chmod(0o755)
    return bin_dir


def bootstrap(bin_dir, *args, **env):
    clean = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent), "XDG_RUNTIME_DIR": str(bin_dir.parent / "run"), **env}
    return subprocess.run([str(bin_dir / "bash"), str(BOOTSTRAP), *args], capture_output=True, text=True,
                          env=clean, timeout=60)


@pytest.mark.parametrize("have, env, kind", [
    (("podman",), {}, "podman"),                              # Podman only: Podman
    (("podman", "dockerd"), {}, "docker"),                    # both engines: Docker, as before
    (("dockerd",), {}, "docker"),
    (("podman", "dockerd"), {"DOWNLINK_ENGINE": "podman"}, "podman"),
    (("podman",), {"DOWNLINK_ENGINE": "docker"}, "docker"),
    (("podman",), {"DOCKER_HOST": "unix:///somewhere/engine.sock"}, "docker"),  # a user-set API is used as it is
])
def test_the_engine_is_chosen_from_what_is_there(tmp_path, have, env, kind):
    result = bootstrap(fake_host(tmp_path, have=have), "engine-kind", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == kind


def test_podmans_socket_is_the_users_own_when_not_root(tmp_path):
    bin_dir = fake_host(tmp_path, uid=1000)
    assert bootstrap(bin_dir, "podman-host").stdout.strip() == f"unix://{tmp_path}/run/downlink-podman/podman.sock"
    bin_dir = fake_host(tmp_path / "root", uid=0)
    assert bootstrap(bin_dir, "podman-host").stdout.strip() == "unix:///run/downlink-podman/podman.sock"


def test_a_missing_podman_is_one_message_with_dnf_and_apt_and_nothing_installed(tmp_path):
    bin_dir = fake_host(tmp_path, uid=1000)
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\ntouch {tmp_path}/apt-was-run\n")
    (bin_dir / "apt-get").chmod(0o755)
    result = bootstrap(bin_dir, "podman")
    assert result.returncode == 1
    assert not (tmp_path / "apt-was-run").exists()
    lines = result.stderr.splitlines()
    assert sum("ERROR" in line for line in lines) == 1, result.stderr
    assert "missing: podman" in result.stderr
    assert "sudo dnf install -y podman" in result.stderr
    assert "sudo apt-get install -y podman netavark aardvark-dns" in result.stderr


def test_a_user_set_docker_host_that_does_not_answer_is_named_and_docker_is_not_installed(tmp_path):
    bin_dir = fake_host(tmp_path, uid=0, have=("docker",), docker_answers=False)
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\ntouch {tmp_path}/apt-was-run\n")
    (bin_dir / "apt-get").chmod(0o755)
    result = bootstrap(bin_dir, "engine", DOCKER_HOST="unix:///nowhere/engine.sock")
    assert result.returncode == 1
    assert "DOCKER_HOST=unix:///nowhere/engine.sock does not answer" in result.stderr
    assert not (tmp_path / "apt-was-run").exists()


def test_no_engine_at_all_as_a_user_is_one_message(tmp_path):
    result = bootstrap(fake_host(tmp_path, uid=1000, have=("docker",)), "engine")
    assert result.returncode == 1
    assert result.stderr.count("ERROR") == 1
    assert "dnf install -y podman docker-ce-cli docker-compose-plugin" in result.stderr
    assert "apt-get install -y docker.io" in result.stderr


@pytest.fixture(autouse=True)
def _no_real_engine_env(monkeypatch):
    for name in ("DOCKER_HOST", "DOWNLINK_ENGINE", "DOWNLINK_PODMAN_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    assert os.path.exists(BOOTSTRAP)
