"""The crontab importer's modules on their own (plugins/downlink_airflow/crontab/), run in the
Airflow image; test_crontab_import.py covers the whole import through goldens and the CLI."""
import difflib

import pytest
import yaml

from downlink_airflow.crontab import import_crontab, merge
from downlink_airflow.crontab.result import Untranslatable
from downlink_airflow.crontab.schedule import parse_schedule


def key(schedule):
    return parse_schedule(schedule.split())[0]


@pytest.mark.parametrize("a, b", [
    ("0 0 * * 7", "0 0 * * 0"),
    ("0 0 * * sun", "0 0 * * 0"),
    ("*/15 * * * *", "0,15,30,45 * * * *"),
    ("0 9 * * MON-fri", "0 9 * * 1-5"),
    ("0 0 * jan,JUL *", "0 0 * 1,7 *"),
    ("5-55/10 * * * *", "5,15,25,35,45,55 * * * *"),
    ("02 2 * * *", "2 2 * * *"),
])
def test_schedules_croniter_expands_alike_share_a_key(a, b):
    assert key(a) == key(b)


def test_the_day_rule_keeps_restricted_and_unrestricted_days_apart():
    # `* * 1 * 0-6` fires on the 1st only; `* * 1 * *` too, but cron reads them differently once
    # both day fields are restricted, so only schedules written alike share a chain.
    assert key("0 0 1 * *") != key("0 0 1 * 0-6")


def test_a_bad_field_is_a_problem_with_its_line_number():
    result = import_crontab("MAILTO=a@example.org\n\n61 * * * * minute.sh\n0 1 * * * ok.sh\n", "t.crontab")
    assert [str(p) for p in result.problems] == [
        "t.crontab:3: minute field '61': 61 is out of range 0-59: 61 * * * * minute.sh"]
    assert [e.name for e in result.entries] == ["ok"]


@pytest.mark.parametrize("schedule, reason", [
    ("0 0 5-1 * *", "day of month field '5-1': range 5-1 goes backwards"),  # croniter would wrap it around
    ("5/10 * * * *", "minute field '5/10': a step needs a range or * (5-59/10?)"),
    ("0 0 L * *", "day of month field 'L': 'L' is not a number"),  # croniter's extensions are not cron's
    ("0 0 * * 1#2", "day of week field '1#2': '1#2' is not a number or a name (sun/mon/tue...)"),
    ("H * * * *", "minute field 'H': 'H' is not a number"),
    ("0 0 1,,2 * *", "day of month field '1,,2': empty list item"),
])
def test_fields_cron_rejects_are_rejected_even_where_croniter_accepts_them(schedule, reason):
    with pytest.raises(Untranslatable) as exc:
        parse_schedule(schedule.split())
    assert str(exc.value) == reason


REGISTRY = """\
# The observatory's registry: keep this comment.
version: 1
chains:
  # nightly work
  nightly:
    schedule: "0 12 * * *"  # noon UTC, after the night
scripts:
  - name: reduce  # the main step
    command: reduce.py
    chain: nightly

# trailing notes stay too
"""


def test_merge_keeps_the_text_and_comments_and_adds_the_import():
    result = import_crontab("30 2 * * * /home/obs/bin/fetch.py\n", "c", reserved_names={"reduce"},
                            reserved_chains={"nightly"})
    merged = merge.merge_text(REGISTRY, result)
    for line in REGISTRY.splitlines():
        assert line in merged.splitlines(), line
    assert merged.index("# The observatory's registry") < merged.index("# nightly work") < merged.index("cron_daily_0230")
    data = yaml.safe_load(merged)
    assert data["chains"]["cron_daily_0230"]["schedule"] == "30 2 * * *"
    assert [s["name"] for s in data["scripts"]] == ["reduce", "fetch"]


def test_merge_refuses_an_inline_block_and_text_that_is_not_one_yaml_document():
    result = import_crontab("0 1 * * * x.sh\n", "c")
    with pytest.raises(merge.MergeError, match="written inline"):
        merge.merge_text("version: 1\nchains: {a: {schedule: '@daily'}}\nscripts: []\n", result)
    with pytest.raises(merge.MergeError, match="is not valid YAML"):
        merge.merge_text("version: 1\n---\nversion: 1\n", result)


def test_registry_names_include_chains_and_scripts_with_their_own_schedule():
    names, chains = merge.registry_names({"chains": {"a": {}}, "scripts": [{"name": "x"}, {"name": "y", "schedule": "@daily"}]})
    assert names == {"x", "y"} and chains == {"a", "y"}


def test_merge_keeps_what_follows_a_block_after_the_new_entries():
    # ruamel keeps the lines after a value with that value: the comment that introduces scripts:
    # stays in front of it, the file's last lines stay last, flow lists and quotes stay as written.
    text = ("version: 1\nchains:\n  a:\n    schedule: '@daily'  # eol\n    tags: [x, y]\n\n# the scripts\n"
            "scripts:\n  - name: s\n    command: \"s --x\"  # last\n    chain: a\n  # indented tail\n# after\n")
    merged = merge.merge_text(text, import_crontab("0 1 * * * x.sh\n", "c"))
    lines = merged.splitlines()
    ops = difflib.SequenceMatcher(None, text.splitlines(), lines, autojunk=False).get_opcodes()
    assert {tag for tag, *_ in ops} <= {"equal", "insert"}
    assert lines.index("    description: imported from c line 1") < lines.index("# the scripts")
    assert lines[-3:] == ["    retries: 0", "  # indented tail", "# after"]
    assert yaml.safe_load(merged)["chains"]["cron_daily_0100"]["schedule"] == "0 1 * * *"


def test_merge_refuses_what_ruamel_would_write_differently():
    # ruamel writes a null as `null` whatever the spelling: a `~` is refused, not rewritten.
    with pytest.raises(merge.MergeError, match="unusual layout"):
        merge.merge_text("version: 1\nchains:\n  a: {schedule: ~}\nscripts: []\n", import_crontab("0 1 * * * x.sh\n", "c"))
