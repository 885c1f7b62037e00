"""Entry-level `secrets:`: names, the files `make check` looks at, the step's read-only mount at
/run/secrets/NAME, and the value masked in the task log."""
import os
import textwrap
from types import SimpleNamespace

import pytest

from downlink_airflow import cli, secret_masking, step_secrets
from downlink_airflow.config import Settings
from downlink_airflow.registry import load_registry_text
from downlink_airflow.registry_dags import build_dags


def registry(secrets):
    return load_registry_text(textwrap.dedent("""
        chains: {c: {schedule: "@daily"}}
        scripts:
          - {name: upload, command: upload.sh, chain: c, secrets: %s}
          - {name: other, command: other.sh, chain: c}
        """) % secrets, "t.yaml", {})


def folder(tmp_path, mode=0o750, **files):
    for name, (text, file_mode) in files.items():
        path = tmp_path / name
        path.write_text(text)
        path.chmod(file_mode)
    tmp_path.chmod(mode)
    return str(tmp_path)


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x y", 3])
def test_a_secret_name_is_a_plain_file_name(name):
    reg = registry(f"[{name!r}]" if isinstance(name, str) else f"[{name}]")
    assert [p for p in reg.problems if p.startswith("scripts[0] 'upload': secrets[0]:")], reg.problems


def test_the_secret_is_mounted_read_only_in_its_step_only():
    reg = registry("[archive_token]")
    assert reg.problems == []
    settings = Settings.from_env({"DOWNLINK_TAG": "t", "DOWNLINK_SECRETS_DIR": "/srv/downlink/secrets"})
    dag = build_dags(reg, settings)["c"]
    upload, other = dag.get_task("upload"), dag.get_task("other")
    binds = [m for m in upload.mounts if m["Type"] == "bind"]
    assert binds == [{"Target": "/run/secrets/archive_token", "Source": "/srv/downlink/secrets/archive_token",
                      "Type": "bind", "ReadOnly": True}]
    assert upload.secret_files == ("/srv/downlink/secrets/archive_token",)
    assert not [m for m in other.mounts if m["Type"] == "bind"] and other.secret_files == ()
    # The value itself is nowhere in the task's definition.
    assert "archive_token" not in str(upload.environment)


def test_make_check_refuses_a_missing_or_open_secret(tmp_path):
    reg = registry("[ok, missing, world, group_w]")
    path = folder(tmp_path, ok=("s", 0o640), world=("s", 0o644), group_w=("s", 0o660))
    problems = cli.secret_file_problems(reg, path)
    assert len(problems) == 3 and all(p.startswith("entry 'upload': secrets: ") for p in problems)
    assert "missing does not exist" in problems[0]
    assert "world is open to others" in problems[1]
    assert "group_w is" in problems[2] and ("writable by its group" in problems[2] or "open to group" in problems[2])


def test_make_check_refuses_an_open_folder_and_an_unset_one(tmp_path):
    reg = registry("[ok]")
    assert "open to others" in cli.secret_file_problems(reg, folder(tmp_path, mode=0o755, ok=("s", 0o640)))[0]
    assert "DOWNLINK_SECRETS_DIR is not set" in cli.secret_file_problems(reg, "")[0]


def test_only_group_0_may_read():
    info = SimpleNamespace(st_mode=0o100640, st_gid=100)
    assert "open to group 100" in step_secrets._open_to_others(info)
    assert step_secrets._open_to_others(SimpleNamespace(st_mode=0o100640, st_gid=0)) == ""
    assert step_secrets._open_to_others(SimpleNamespace(st_mode=0o100600, st_gid=100)) == ""


def test_the_value_and_each_of_its_lines_are_masked():
    assert secret_masking.parts("tok-123\n") == ["tok-123"]
    key = "-----BEGIN KEY-----\nabcdef\n-----END KEY-----\n"
    assert secret_masking.parts(key) == [key.rstrip("\n"), "-----BEGIN KEY-----", "abcdef", "-----END KEY-----"]
    assert secret_masking.parts("\n") == []


def test_the_step_masks_its_secrets_before_the_container_starts(tmp_path):
    from airflow.sdk._shared.secrets_masker import redact

    path = folder(tmp_path, archive_token=("tok-9f8e7d6c5b\n", 0o640))
    settings = Settings.from_env({"DOWNLINK_TAG": "t", "DOWNLINK_SECRETS_DIR": path})
    task = build_dags(registry("[archive_token]"), settings)["c"].get_task("upload")
    task.mask_secrets()
    assert redact("the step printed tok-9f8e7d6c5b") == "the step printed ***"


def test_an_unreadable_secret_fails_the_task_before_it_runs(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    settings = Settings.from_env({"DOWNLINK_TAG": "t", "DOWNLINK_SECRETS_DIR": str(tmp_path)})
    task = build_dags(registry("[gone]"), settings)["c"].get_task("upload")
    with pytest.raises(AirflowFailException, match="gone"):
        task.mask_secrets()
    assert os.path.basename(task.secret_files[0]) == "gone"


def test_cli_check_fails_on_a_missing_secret_naming_the_entry(tmp_path, monkeypatch, capsys):
    reg = tmp_path / "registry.yaml"
    reg.write_text("chains: {c: {schedule: '@daily'}}\nscripts:\n  - {name: upload, command: u.sh, chain: c, secrets: [tok]}\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o750)
    monkeypatch.setenv("DOWNLINK_SECRETS_DIR", str(secrets))
    assert cli.main(["check", str(reg)]) == 1
    assert "entry 'upload': secrets: " in capsys.readouterr().err
    (secrets / "tok").write_text("v")
    (secrets / "tok").chmod(0o640)
    assert cli.main(["check", str(reg)]) == 0
