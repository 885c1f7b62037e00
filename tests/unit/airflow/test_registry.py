"""The script registry: reading, checking, and the DAGs built from it (runs in the Airflow image)."""
import os
import textwrap
from datetime import timedelta

import pytest

from downlink_airflow.config import Settings  # noqa: E402
from downlink_airflow.registry import RegistryError, load_registry, load_registry_text  # noqa: E402
from downlink_airflow.registry_dags import build_dags  # noqa: E402

DAGS = os.environ.get("DOWNLINK_DAGS_FOLDER", "/opt/airflow/dags")
SETTINGS = Settings.from_env({"DOWNLINK_TAG": "abc123"})

HEAD = """
version: 1
chains:
  night:
    schedule: "0 11 * * *"
scripts:
  - {name: download, command: "downlink download --night {night}", chain: night, ingest: true}
  - {name: index, command: "downlink index --night {night}", chain: night, after: download, ingest: true}
"""


def registry(extra="", head=HEAD, env=None):
    return load_registry_text(textwrap.dedent(head) + textwrap.indent(textwrap.dedent(extra), "  "), "test.yaml", env or {})


def dags(reg):
    return build_dags(reg, SETTINGS)


def test_a_four_line_entry_becomes_a_task_after_its_upstream():
    reg = registry("""
      - name: header_summary
        command: header-summary --night {night}
        after: index
        chain: night
    """)
    assert reg.problems == []
    dag = dags(reg)["night"]
    task = dag.get_task("header_summary")
    assert task.upstream_task_ids == {"index"}
    assert task.trigger_rule == "all_success"
    assert task.command[:2] == ["header-summary", "--night"] and "dag_run.conf" in task.command[2]
    assert task.image == "downlink/astro:{{ var.value.get('downlink_image_tag', 'abc123') }}"
    assert task.retries == 2


def test_the_default_chain_is_daily_chain():
    reg = load_registry_text(textwrap.dedent("""
        chains: {daily_chain: {schedule: "@daily"}}
        scripts:
          - name: a
            command: a --night {night}
    """), "t.yaml", {})
    assert reg.problems == [] and reg.scripts[0].chain == "daily_chain"


def test_cron_semicolon_runs_whatever_the_upstream_did():
    reg = registry("""
      - {name: cleanup, command: "cleanup.sh", chain: night, after: index, when: always}
    """)
    assert dags(reg)["night"].get_task("cleanup").trigger_rule == "all_done"


def test_optional_fields_reach_the_operator():
    reg = registry("""
      - name: heavy
        chain: night
        command: [reduce, --night, "{night}"]
        after: [download, index]
        retries: 5
        retry_delay: 2m
        timeout: 1h
        memory: 2G
        environment: {MY_VAR: 1, OTHER: x}
        image: downlink/other:1.0
        email: [a@example.org]
    """)
    assert reg.problems == []
    task = dags(reg)["night"].get_task("heavy")
    assert task.retries == 5 and task.retry_delay == timedelta(minutes=2)
    assert task.execution_timeout == timedelta(hours=1)
    assert task.mem_limit == "2g"
    assert task.environment["MY_VAR"] == "1" and task.environment["OTHER"] == "x"
    assert "DOWNLINK_NIGHT" in task.environment
    assert task.image == "downlink/other:1.0"
    assert task.upstream_task_ids == {"download", "index"}
    assert reg.scripts[-1].email == ("a@example.org",)


def test_a_heavy_step_gets_the_heavy_queue_and_pool_and_the_others_keep_the_defaults():
    reg = registry("""
      - {name: calibrate, command: x, chain: night, after: index, queue: heavy}
      - {name: light, command: x, chain: night, after: index, queue: default}
    """)
    assert reg.problems == []
    night = dags(reg)["night"]
    heavy, light, download = (night.get_task(t) for t in ("calibrate", "light", "download"))
    assert (heavy.queue, heavy.pool) == ("heavy", "heavy")
    # Unset and `default` both leave Airflow's own queue; `light` keeps the default pool
    # (download is in the ingest pool shared with the arrivals DAG: test_arrivals).
    assert (light.queue, light.pool) == ("default", "default_pool")
    assert download.queue == "default" and download.pool == "downlink_ingest"


def test_the_registry_says_which_steps_ingest_not_their_names():
    reg = registry("""
      - {name: fetch_more, command: x, chain: night, after: index, ingest: true}
      - {name: archive, command: x, chain: night, after: index}
    """)
    assert reg.problems == []
    night = dags(reg)["night"]
    assert night.get_task("fetch_more").pool == "downlink_ingest"
    assert night.get_task("archive").pool == "default_pool"  # the name alone does not make an ingest step
    bad = registry("""
      - {name: odd, command: x, chain: night, ingest: maybe}
    """)
    assert any("'odd': ingest: 'maybe' is not true or false" in p for p in bad.problems), bad.problems


def test_shell_syntax_runs_under_sh_and_plain_commands_are_split():
    reg = registry("""
      - {name: piped, chain: night, command: "listhead {data}/raw/{night}/a.fits | grep EXPTIME > /dev/null"}
      - {name: quoted, chain: night, command: "prog --title 'two words' --night {night}"}
    """)
    piped = dags(reg)["night"].get_task("piped").command
    assert piped[:2] == ["sh", "-c"] and piped[2].startswith("listhead /data/raw/{{")
    quoted = dags(reg)["night"].get_task("quoted").command
    assert quoted[:3] == ["prog", "--title", "two words"]


def test_an_entry_with_its_own_schedule_is_its_own_chain():
    reg = registry("""
      - {name: hourly_check, command: "check-disk", schedule: "@hourly"}
    """)
    assert reg.problems == []
    dag = dags(reg)["hourly_check"]
    assert [t.task_id for t in dag.tasks if t.task_id != "watcher"] == ["hourly_check"]
    from airflow.serialization.encoders import encode_timetable

    assert encode_timetable(dag.timetable)["__var"]["expression"] in ("@hourly", "0 * * * *")


def test_schedules_come_from_the_environment_with_a_default():
    head = HEAD.replace('"0 11 * * *"', '"${MY_SCHEDULE:-30 9 * * *}"')
    assert registry(head=head).chains["night"].schedule == "30 9 * * *"
    assert registry(head=head, env={"MY_SCHEDULE": "@hourly"}).chains["night"].schedule == "@hourly"


@pytest.mark.parametrize("entry, expected", [
    ("{name: x, command: x, chain: night, after: indx}", "scripts[2] 'x': after: unknown script 'indx' (did you mean 'index'?)"),
    ("{name: index, command: again, chain: night}", "scripts[2] 'index': name: duplicate: 'index' is already scripts[1]"),
    ("{name: x, command: x, chain: night, retires: 3}", "scripts[2] 'x': retires: unknown field (did you mean 'retries'?)"),
    ("{name: x, command: x, schedule: '61 * * * *'}", "scripts[2] 'x': schedule: '61 * * * *' is not a valid cron expression"),
    ("{name: x, command: x, schedule: '0 11 * *'}", "scripts[2] 'x': schedule: '0 11 * *' has 4 fields; cron needs 5"),
    ("{name: x, command: x, schedule: '@reboot'}", "scripts[2] 'x': schedule: unknown macro '@reboot'"),
    ("{name: x, command: x, chain: nite}", "scripts[2] 'x': chain: unknown chain 'nite' (did you mean 'night'?)"),
    ("{name: x, command: x, chain: night, when: sometimes}", "scripts[2] 'x': when: 'sometimes' is not one of"),
    ("{name: x, command: x, chain: night, memory: lots}", "scripts[2] 'x': memory: 'lots' is not a memory size"),
    ("{name: x, command: x, chain: night, timeout: soon}", "scripts[2] 'x': timeout: 'soon' is not a duration"),
    ("{name: x, command: x, chain: night, email: nobody}", "scripts[2] 'x': email: not an address: 'nobody'"),
    ("{name: x, command: x, chain: night, writes_archive: yes please}", "scripts[2] 'x': writes_archive: 'yes please' is not true or false"),
    ("{name: x, chain: night}", "scripts[2] 'x': command: required"),
    ("{name: x, command: x, chain: night, queue: haevy}",
     "scripts[2] 'x': queue: 'haevy' is not a known queue (one of: default, heavy) (did you mean 'heavy'?)"),
    ("{name: 'has space', command: x, chain: night}", "scripts[2] 'has space': name: required; letters, digits"),
    ("{name: x, command: \"unbalanced 'quote\", chain: night}", "scripts[2] 'x': command: cannot be parsed"),
])
def test_each_problem_names_the_entry_and_the_field(entry, expected):
    reg = registry(f"  - {entry}\n")
    assert any(p.startswith(expected) for p in reg.problems), reg.problems
    # The good entries still load: a broken entry never takes the others with it.
    assert {"download", "index"} <= {s.name for s in reg.scripts}
    with pytest.raises(RegistryError) as err:
        reg.check()
    assert "test.yaml" in str(err.value) and expected.split(":")[0] in str(err.value)


@pytest.mark.parametrize("image", ["other/image:1.0", "docker.io/library/debian:12", "downlink/", "ubuntu"])
def test_an_image_that_is_not_the_projects_own_is_refused_by_entry_and_field(image):
    # The docker proxy would refuse it when the task starts (PROXY_ALLOWED_IMAGES=downlink/);
    # the check says so before a deploy, naming the entry and the field.
    reg = registry(f"""
      - {{name: x, command: x, chain: night, image: "{image}"}}
      - {{name: y, command: y, chain: night, after: x}}
    """)
    expected = f"scripts[2] 'x': image: {image!r} is not one of the project's images"
    assert any(p.startswith(expected) for p in reg.problems), reg.problems
    assert {s.name for s in reg.scripts} == {"download", "index"}
    defaults = registry(head=HEAD.replace("chains:", f'defaults:\n  image: "{image}"\nchains:'))
    assert any(p.startswith(f"defaults: image: {image!r} is not one of the project's images") for p in defaults.problems)


@pytest.mark.parametrize("image", ["astro", "downlink/astro:abc123", "downlink/other:1.0"])
def test_the_projects_images_are_accepted(image):
    reg = registry(f"""
      - {{name: x, command: x, chain: night, image: "{image}"}}
    """)
    assert reg.problems == []
    assert reg.scripts[-1].image == image


def test_a_cycle_is_named_and_left_out_with_what_depends_on_it():
    reg = registry("""
      - {name: a, command: a, chain: night, after: c}
      - {name: b, command: b, chain: night, after: a}
      - {name: c, command: c, chain: night, after: b}
      - {name: d, command: d, chain: night, after: c}
      - {name: e, command: e, chain: night, after: index}
    """)
    assert any("cycle: a -> b -> c -> a" in p for p in reg.problems), reg.problems
    assert any(p.startswith("scripts[5] 'd': after: left out because 'c' has a problem") for p in reg.problems)
    assert {s.name for s in reg.scripts} == {"download", "index", "e"}
    assert set(dags(reg)["night"].task_ids) == {"download", "index", "e", "watcher"}


def test_dependencies_stay_inside_a_chain():
    reg = registry("""
      - {name: solo, command: x, schedule: "@daily"}
      - {name: y, command: y, chain: night, after: solo}
    """)
    assert any("'y': after: 'solo' is in chain 'solo', not 'night'" in p for p in reg.problems)


def test_a_bad_chain_schedule_leaves_out_that_chain_only():
    reg = registry("""
      - {name: other, command: x, chain: broken}
    """, head=HEAD.replace("scripts:", "  broken:\n    schedule: every day\nscripts:"))
    assert any(p.startswith("chain 'broken': schedule:") for p in reg.problems), reg.problems
    assert set(dags(reg)) == {"night"}


@pytest.mark.parametrize("value", ["lots", 0, True, 2.5])
def test_a_bad_max_active_runs_leaves_out_that_chain_only(value):
    reg = registry("""
      - {name: other, command: x, chain: busy}
    """, head=HEAD.replace("scripts:", f"  busy:\n    max_active_runs: {value!r}\nscripts:"))
    assert any(p.startswith("chain 'busy': max_active_runs:") for p in reg.problems), reg.problems
    assert set(dags(reg)) == {"night"}


def test_unusable_files_are_errors_naming_the_file(tmp_path):
    bad = tmp_path / "registry.yaml"
    bad.write_text("scripts:\n  - name: a\n   command: [\n")
    with pytest.raises(RegistryError) as err:
        load_registry(str(bad))
    assert str(bad) in str(err.value) and "not valid YAML: line" in str(err.value)
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(str(tmp_path / "missing.yaml"))
    with pytest.raises(RegistryError, match="version"):
        load_registry_text("version: 2\n", "v.yaml", {})


def test_the_shipped_registry_is_clean_and_builds_the_daily_chain():
    reg = load_registry(os.path.join(DAGS, "registry.yaml"), env={})
    assert reg.problems == []
    built = dags(reg)
    assert {"daily_chain", "astro_env_check"} <= set(built)
    daily = built["daily_chain"]
    assert daily.get_task("diagnostics").trigger_rule == "all_done" and daily.get_task("diagnostics").retries == 0
    assert daily.get_task("header_summary").upstream_task_ids == {"index"}
    assert {t.task_id for t in daily.tasks if t.queue == "heavy"} == {"calibrate", "sources"}


def test_only_the_archive_step_may_write_the_archive_of_raw_frames():
    reg = load_registry(os.path.join(DAGS, "registry.yaml"), env={})
    settings = Settings.from_env({"DOWNLINK_TAG": "abc123", "DOWNLINK_RAW_VOLUME": "proj-raw"})
    daily = build_dags(reg, settings)["daily_chain"]
    writable = {t.task_id for t in daily.tasks for m in getattr(t, "mounts", ())
                if m["Source"] == "proj-raw" and not m.get("ReadOnly")}
    read_only = {t.task_id for t in daily.tasks for m in getattr(t, "mounts", ())
                 if m["Source"] == "proj-raw" and m.get("ReadOnly")}
    assert writable == {"archive"}
    assert {"download", "index", "calibrate", "fits_verify", "bias_levels"} <= read_only
