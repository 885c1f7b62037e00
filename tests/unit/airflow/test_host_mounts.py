"""Entry-level `mounts:`: the allow-list (DOWNLINK_ALLOWED_MOUNTS), the paths never mounted, and
the binds a step gets."""
import textwrap

import pytest

from downlink_airflow.config import Settings
from downlink_airflow.host_mounts import HostMount, parse_allow_list, parse_mount
from downlink_airflow.registry import load_registry_text
from downlink_airflow.registry_dags import build_dags

ALLOWED = {"DOWNLINK_ALLOWED_MOUNTS": "/grp/instrument:/scratch/dlcam,/etc"}


def registry(mounts, env=ALLOWED):
    text = textwrap.dedent("""
        chains: {c: {schedule: "@daily"}}
        scripts:
          - name: reader
            command: reader.py
            chain: c
            mounts: %s
        """) % mounts
    return load_registry_text(text, "t.yaml", env)


def test_allow_list_takes_colons_and_commas_and_normalises():
    assert parse_allow_list("/grp/a/:/b//c, /d") == ("/grp/a", "/b/c", "/d")
    assert parse_allow_list("") == ()
    for bad in ("grp/a", "/grp/../etc"):
        with pytest.raises(ValueError):
            parse_allow_list(bad)


def test_a_plain_path_is_read_only_at_the_same_place():
    assert parse_mount("/grp/instrument/data", ("/grp/instrument",)) == HostMount("/grp/instrument/data", "/grp/instrument/data")
    assert parse_mount({"host": "/grp/instrument/", "target": "/in", "rw": True}, ("/grp/instrument",)) == \
        HostMount("/grp/instrument", "/in", True)


@pytest.mark.parametrize("host", ["/", "/etc", "/etc/ssl", "/var/lib/docker", "/var/lib/docker/volumes/x",
                                  "/var/run/docker.sock", "/run/docker.sock", "/proc", "/sys/fs", "/dev/sda",
                                  "/var", "/run", "/var/lib"])
def test_system_paths_are_never_mounted_even_when_allowed(host):
    with pytest.raises(ValueError, match="never mounted"):
        parse_mount(host, ("/",))


@pytest.mark.parametrize("host", ["relative/path", "/grp/instrument/../../etc", "", None, 3])
def test_relative_paths_and_dotdot_are_refused(host):
    with pytest.raises(ValueError):
        parse_mount(host, ("/grp",))


def test_only_under_the_allow_list_and_none_when_it_is_empty():
    with pytest.raises(ValueError, match="not under DOWNLINK_ALLOWED_MOUNTS"):
        parse_mount("/grp/instrumentX", ("/grp/instrument",))
    with pytest.raises(ValueError, match="empty: no host mounts allowed"):
        parse_mount("/grp/instrument", ())


@pytest.mark.parametrize("target", ["/", "/data", "/data/raw", "/source", "/run/secrets/x", "/run", "/proc"])
def test_targets_may_not_cover_the_steps_own_mounts(target):
    with pytest.raises(ValueError, match="target"):
        parse_mount({"host": "/grp/a", "target": target}, ("/grp",))


def test_the_registry_names_entry_and_field_for_each_bad_mount():
    reg = registry("[/grp/instrument/data, /etc/passwd, {host: /elsewhere}, {host: /grp/instrument, rw: maybe}, {hots: /x}]")
    problems = [p for p in reg.problems if "mounts[" in p]
    assert [p.split(":")[1].strip() for p in problems] == ["mounts[1]", "mounts[2]", "mounts[3]", "mounts[4]"]
    assert all(p.startswith("scripts[0] 'reader': mounts[") for p in problems)
    assert "/etc" in problems[0] and "DOWNLINK_ALLOWED_MOUNTS" in problems[1] and "rw" in problems[2]
    assert reg.scripts == []  # the entry is left out of its chain


def test_the_same_target_twice_is_a_problem():
    reg = registry("[/grp/instrument/a, {host: /scratch/dlcam, target: /grp/instrument/a}]")
    assert reg.problems == ["scripts[0] 'reader': mounts[1]: target /grp/instrument/a is mounted twice"]


def test_without_an_allow_list_no_mount_is_accepted():
    reg = registry("[/grp/instrument]", env={})
    assert reg.problems and "no host mounts allowed" in reg.problems[0]


def test_mounts_are_not_a_default_for_every_entry():
    reg = load_registry_text("defaults: {mounts: [/grp/instrument]}\nchains: {c: {}}\nscripts: []\n", "t.yaml", ALLOWED)
    assert reg.problems and reg.problems[0].startswith("defaults: mounts: unknown field")


def test_the_step_gets_binds_read_only_unless_rw():
    reg = registry("[/grp/instrument/data, {host: /scratch/dlcam, target: /scratch, rw: true}]")
    assert reg.problems == []
    task = build_dags(reg, Settings.from_env({"DOWNLINK_TAG": "t"}))["c"].get_task("reader")
    binds = {m["Target"]: m for m in task.mounts if m["Type"] == "bind"}
    assert binds["/grp/instrument/data"]["Source"] == "/grp/instrument/data" and binds["/grp/instrument/data"]["ReadOnly"] is True
    assert binds["/scratch"]["Source"] == "/scratch/dlcam" and binds["/scratch"]["ReadOnly"] is False
