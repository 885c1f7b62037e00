"""The crontab importer (the package plugins/downlink_airflow/crontab/), run in the Airflow image.

Golden files: tests/unit/airflow/crontab/NAME.crontab -> NAME.yaml (what `import-crontab` prints).
A `# args: --wrapper X` comment in a .crontab passes importer options. After an intended change,
regenerate the goldens with DOWNLINK_REGEN_GOLDEN=1 (mount tests/ read-write), then review the diff.
"""
import difflib
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from downlink_airflow import registry  # noqa: E402
from downlink_airflow.crontab import import_crontab, merge  # noqa: E402
from downlink_airflow.crontab import scripts as crontab_scripts  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "crontab")
DAGS = os.environ.get("DOWNLINK_DAGS_FOLDER", "/opt/airflow/dags")
REGISTRY = os.path.join(DAGS, "registry.yaml")
REGEN = os.environ.get("DOWNLINK_REGEN_GOLDEN") == "1"
CASES = sorted(f[: -len(".crontab")] for f in os.listdir(GOLDEN) if f.endswith(".crontab"))


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def golden_args(text):
    for line in text.splitlines():
        if line.startswith("# args:"):
            return shlex.split(line[len("# args:"):])
    return []


def translate(name):
    """The import as `import-crontab` prints it; `--scripts DIR [--scripts-into DIR]` (folders next
    to the golden) are planned, not copied (tests/ is read-only)."""
    text = read(os.path.join(GOLDEN, name + ".crontab"))
    args = golden_args(text)
    option = {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--") and i + 1 < len(args)}
    wrappers = [args[i + 1] for i, a in enumerate(args) if a == "--wrapper"]
    result = import_crontab(text, f"{name}.crontab", wrappers=wrappers)
    if "--scripts" in option:
        into = os.path.join(GOLDEN, option.get("--scripts-into", "no-such-folder"))
        plan = crontab_scripts.plan(result.entries, os.path.join(GOLDEN, option["--scripts"]), into)
        result.notes += plan.notes("images/astro/scripts/", option["--scripts"])
    return result


def one(text, **kwargs):
    """Entries of a small crontab, as {name: entry data}; fails on any problem."""
    result = import_crontab(text, "t.crontab", **kwargs)
    assert result.problems == []
    return {e["name"]: e for e in result.scripts_data()}


def check(data, source="t.yaml"):
    return registry.parse_registry(data, source, env={})


# --------------------------------------------------------------------------------------------
# Goldens


def test_the_goldens_cover_what_they_must():
    assert {"schedules", "and_then", "semicolon", "mixed", "mailto", "variables", "redirects", "wrappers",
            "names", "errors", "observatory"} <= set(CASES)
    assert len([line for line in read(os.path.join(GOLDEN, "observatory.crontab")).splitlines()
                if line.strip() and not line.startswith("#")]) >= 20


@pytest.mark.parametrize("name", CASES)
def test_golden(name):
    got = translate(name).to_yaml()
    path = os.path.join(GOLDEN, name + ".yaml")
    if REGEN:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(got)
        return
    assert os.path.exists(path), f"no {path}: run with DOWNLINK_REGEN_GOLDEN=1 (tests/ mounted read-write)"
    assert got == read(path), f"{name}: output differs from the golden (DOWNLINK_REGEN_GOLDEN=1 regenerates)"


@pytest.mark.parametrize("name", CASES)
def test_output_round_trips_and_the_registry_accepts_it(name):
    result = translate(name)
    data = yaml.safe_load(result.to_yaml())
    assert data == result.data()
    reg = check(data, name)
    assert reg.problems == []
    assert [s.name for s in reg.scripts] == [e.name for e in result.entries]
    assert set(reg.chains) == set(result.chains)


# --------------------------------------------------------------------------------------------
# Schedules and chains


@pytest.mark.parametrize("schedule, chain", [
    ("30 2 * * *", "cron_daily_0230"),
    ("15 * * * *", "cron_hourly_15"),
    ("0 * * * *", "cron_hourly"),
    ("0 0 * * *", "cron_daily"),
    ("@daily", "cron_daily"),
    ("@midnight", "cron_daily"),
    ("@hourly", "cron_hourly"),
    ("@weekly", "cron_weekly"),
    ("@monthly", "cron_monthly"),
    ("@yearly", "cron_yearly"),
    ("@annually", "cron_yearly"),
    ("0 9 * * 1-5", "cron_weekdays_0900"),
    ("0 4 * * mon", "cron_weekly_mon_0400"),
    ("0 4 * * 0", "cron_weekly_sun_0400"),
    ("0 5 15 * *", "cron_monthly_15_0500"),
    ("*/10 * * * *", "cron_every_10min"),
    ("0 */6 * * *", "cron_every_6h"),
    ("0,30 8-18 * * *", "cron_0.30_8-18_x_x_x"),
])
def test_chain_names_are_readable_and_deterministic(schedule, chain):
    result = import_crontab(f"{schedule} job.sh\n", "t")
    assert list(result.chains) == [chain]
    assert result.chains[chain].schedule == schedule
    assert check(result.data()).problems == []


def test_lines_with_the_same_times_share_a_chain_and_its_description_names_them():
    result = import_crontab("30 2 * * * a.sh\n@daily b.sh\n30  2 * * *  c.sh\n0 0 * * * d.sh\n0 4 * * 7 e\n0 4 * * 0 f\n", "obs")
    assert {e.name: e.chain for e in result.entries} == {
        "a": "cron_daily_0230", "c": "cron_daily_0230", "b": "cron_daily", "d": "cron_daily",
        "e": "cron_weekly_sun_0400", "f": "cron_weekly_sun_0400"}
    assert result.chains_data()["cron_daily_0230"] == {"schedule": "30 2 * * *",
                                                      "description": "imported from obs lines 1, 3",
                                                      "paused": True}
    assert [e.after for e in result.entries] == [None] * 6  # same chain, no after: concurrent, as in cron


# --------------------------------------------------------------------------------------------
# && and ;


def test_and_means_after_on_success_and_semicolon_after_whatever_the_outcome():
    e = one("0 7 * * * a.sh && b.sh ; c.sh\n")
    assert "after" not in e["a"]
    assert e["b"]["after"] == "a" and "when" not in e["b"]  # success is the registry's default
    assert e["c"]["after"] == "b" and e["c"]["when"] == "always"


def test_a_mix_follows_shell_precedence():
    """`a && b; c` is `(a && b); c`: cron runs c after b, and also when a failed (b never ran).

    The choice: c is `after: b, when: always` and gets no edge to a. When a fails, b ends
    upstream_failed, which all_done counts as done, so c runs as in cron. When b runs, c waits for
    it. One edge to the previous command, with when = the operator in front, reproduces any mix.
    `a; b && c` is `a; (b && c)`: b after a whatever happened, c only when b succeeded."""
    e = one("0 6 * * * a && b; c\n0 7 * * * d; e && f\n0 8 * * * g && h ; i && j\n")
    assert [(n, e[n].get("after"), e[n].get("when", "success")) for n in "abcdefghij"] == [
        ("a", None, "success"), ("b", "a", "success"), ("c", "b", "always"),
        ("d", None, "success"), ("e", "d", "always"), ("f", "e", "success"),
        ("g", None, "success"), ("h", "g", "success"), ("i", "h", "always"), ("j", "i", "success"),
    ]


@pytest.mark.parametrize("line, reason", [
    ("a || b", "|| (run when the previous command failed) is not translatable"),
    ("a & b", "& (run in the background) is not translatable"),
    ("a &", "& (run in the background) is not translatable"),
    ("(a; b)", "a ( ) subshell is not translatable"),
    ("a <<EOF", "here-document (<<) is not translatable"),
    ("a <<< word", "here-document (<<<) is not translatable"),
    ("diff <(a) <(b)", "process substitution (<(...) is not translatable"),
    ("{ a; b; }", "shell compound command ({ ...) is not translatable"),
    ("for f in *; do x $f; done", "shell compound command (for ...) is not translatable"),
    ("a |& b", "|& (bash) is not translatable"),
    ("a &&", "&& without a command after it"),
    ("; a", "; without a command before it"),
    ("echo 'open", "unterminated '"),
])
def test_untranslatable_shell_is_a_problem(line, reason):
    result = import_crontab(f"0 1 * * * {line}\n", "t.crontab")
    assert result.entries == []
    assert len(result.problems) == 1
    assert str(result.problems[0]).startswith(f"t.crontab:1: {reason}")
    assert str(result.problems[0]).endswith(f": 0 1 * * * {line}")


def test_operators_inside_quotes_and_substitutions_do_not_split():
    e = one("""0 1 * * * echo "a && b; c || d" && x $(a; b) `c && d` 'e;f' g\\;h\n""")
    assert list(e) == ["echo", "x"]
    assert e["echo"]["command"] == 'echo "a && b; c || d"'
    assert e["x"]["command"] == "x $(a; b) `c && d` 'e;f' g\\;h"


def test_pipes_and_redirects_stay_in_one_command():
    e = one("0 1 * * * pg_dump obsdb | gzip > /data/backup/db.gz 2>/dev/null\n")
    assert e["pg_dump"]["command"] == "pg_dump obsdb | gzip > /data/backup/db.gz 2>/dev/null"


# --------------------------------------------------------------------------------------------
# Cron's own syntax: %, fields, macros, variables, MAILTO


def test_percent():
    result = import_crontab("0 1 * * * date +%F\n0 2 * * * echo \\%Y-\\%m\n", "t.crontab")
    assert [str(p) for p in result.problems] == [
        "t.crontab:1: unescaped % (cron turns it into a newline and sends the rest to the command's stdin; "
        "write \\% for a literal %): 0 1 * * * date +%F"]
    assert result.scripts_data()[0]["command"] == "echo %Y-%m"


def test_every_problem_is_file_line_reason_line():
    result = translate("errors")
    got = [str(p) for p in result.problems]
    lines = read(os.path.join(GOLDEN, "errors.crontab")).splitlines()
    assert all(p.startswith("errors.crontab:") for p in got)
    for problem in result.problems:
        assert str(problem) == f"errors.crontab:{problem.lineno}: {problem.reason}: {lines[problem.lineno - 1].strip()}"
    assert got[:5] == [
        "errors.crontab:2: @reboot runs when cron starts, not on a schedule: no chain can run it: "
        "@reboot /home/obs/bin/start_daemon.sh",
        "errors.crontab:3: unescaped % (cron turns it into a newline and sends the rest to the command's stdin; "
        "write \\% for a literal %): 0 3 * * * date +%Y-%m-%d > /data/today.txt",
        "errors.crontab:5: || (run when the previous command failed) is not translatable: put the fallback in a "
        "script: 0 4 * * * fetch.sh || alert.sh",
        "errors.crontab:6: & (run in the background) is not translatable: give the command its own line or chain: "
        "0 5 * * * long_job.sh &",
        "errors.crontab:7: minute field '61': 61 is out of range 0-59: 61 * * * * minute.sh",
    ]
    reasons = {p.lineno: p.reason for p in result.problems}
    assert reasons[8] == "hour field '24': 24 is out of range 0-23"
    assert reasons[9] == "day of month field '31-1': range 31-1 goes backwards"
    assert reasons[10] == "month field '13': 13 is out of range 1-12"
    assert reasons[11] == "day of week field '8': 8 is out of range 0-7"
    assert reasons[12] == "minute field '*/0': step '0' must be a whole number of at least 1"
    assert reasons[14].startswith("unknown macro @fortnightly")
    assert reasons[15].startswith("not a cron job")
    assert reasons[20].startswith("MAILTO: obs is not an email address")
    assert reasons[22].startswith("CRON_TZ=Europe/Madrid: chains run in UTC")
    assert reasons[23] == "scheduled in CRON_TZ=Europe/Madrid (line 22); chains run in UTC"
    assert [e.lineno for e in result.entries] == [4]  # only `echo \%Y-\%m done` is translatable


def test_mailto_applies_to_the_lines_after_it():
    e = {k: v.get("email", "default") for k, v in one(read(os.path.join(GOLDEN, "mailto.crontab"))).items()}
    assert e == {"first": "default", "second": ["obs@example.org"],
                 "third": ["obs@example.org", "night@example.org"],
                 "fourth": ["ops@example.org", "oncall@example.org"], "fifth": []}


def test_variables_apply_to_the_lines_after_them_and_cron_s_own_are_not_carried():
    result = translate("variables")
    e = {x["name"]: x for x in result.scripts_data()}
    assert e["first"]["environment"] == {"DLCAM_ROOT": "/data/dlcam", "QC_LEVEL": "strict",
                                         "GREETING": "  hello, world  "}
    assert e["second"]["environment"]["QC_LEVEL"] == "relaxed" and e["second"]["environment"]["EMPTY"] == ""
    assert e["third"]["environment"]["SITE"] == "lapalma" and e["fourth"]["environment"]["SITE"] == "lapalma"
    assert "SITE" not in e["fifth"]["environment"] and e["fifth"]["command"] == "RUN=1 fifth.sh"
    for entry in e.values():
        assert not {"SHELL", "PATH", "HOME", "CRON_TZ"} & set(entry["environment"])
    head = result.to_yaml().split("version: 1")[0]
    assert "variables.crontab:1: SHELL=/bin/bash not carried" in head
    assert "variables.crontab:2: PATH=/home/obs/bin:/usr/bin:/bin not carried" in head


def test_a_time_zone_other_than_utc_is_a_problem_for_it_and_the_lines_it_schedules():
    result = import_crontab("TZ=UTC\n0 1 * * * a\nCRON_TZ=America/Santiago\n0 2 * * * b\nCRON_TZ=UTC\n0 3 * * * c\n", "t")
    assert [(p.lineno, p.reason.split(":")[0]) for p in result.problems] == [
        (3, "CRON_TZ=America/Santiago"), (4, "scheduled in CRON_TZ=America/Santiago (line 3); chains run in UTC")]
    assert [e.name for e in result.entries] == ["a", "c"]


# --------------------------------------------------------------------------------------------
# Redirects, wrappers, names


def test_dev_null_stays_and_says_only_failures_alert():
    result = translate("redirects")
    e = {x.name: x for x in result.entries}
    assert e["quiet"].command == "quiet.sh > /dev/null"
    assert e["silent"].command == "silent.sh >/dev/null 2>&1"
    for name in ("quiet", "silent", "bashism"):
        assert "stdout dropped: only failures alert" in e[name].comments
    assert e["bashism"].command == "bashism.sh >/dev/null 2>&1"
    assert e["logged"].command == "logged.sh 2>&1"  # the log file is gone with the container: task log instead
    assert e["listing"].command == "listing.sh > /data/lists/tonight.txt" and e["listing"].comments == []
    assert "  # stdout dropped: only failures alert\n  - name: quiet\n" in result.to_yaml()


@pytest.mark.parametrize("line, expected", [
    ("cron_setup.sh my_script.py --x", [("my_script", "my_script.py --x", None, None)]),
    ("ur_setup && x.py", [("x", "x.py", None, None)]),
    ("source ~/.bashrc; x.py", [("x", "x.py", None, None)]),
    (". /etc/profile && x.py -v", [("x", "x.py -v", None, None)]),
    ("setup_env; x.py", [("x", "x.py", None, None)]),
    ("obs_setup.sh && x.py", [("x", "x.py", None, None)]),
    ("load_setup_env.sh prod x.py", [("prod", "prod x.py", None, None)]),  # a wrapper runs what follows it
    ("a.sh && ur_setup ; b.sh", [("a", "a.sh", None, None), ("b", "b.sh", "a", "always")]),
    ("a.sh ; ur_setup && b.sh", [("a", "a.sh", None, None), ("b", "b.sh", "a", "always")]),
    ("a.sh && ur_setup && b.sh", [("a", "a.sh", None, None), ("b", "b.sh", "a", None)]),
    ("bash -lc 'source ~/.profile && a.py; b.py'", [("a", "a.py", None, None), ("b", "b.py", "a", "always")]),
    ("cron_setup.sh 'reduce.py --night x' >/dev/null", [("reduce", "reduce.py --night x >/dev/null", None, None)]),
    ("site_env reduce.py", [("reduce", "reduce.py", None, None)]),
])
def test_environment_set_up_is_dropped(line, expected):
    result = import_crontab(f"0 1 * * * {line}\n", "t", wrappers=["site_env"])
    assert result.problems == []
    assert [(e.name, e.command, e.after, e.when if e.when != "success" else None) for e in result.entries] == expected
    assert any("dropped" in c or "unwrapped" in c for e in result.entries for c in e.comments)


def test_names_come_from_the_script_and_are_unique_and_valid():
    result = translate("names")
    names = [e.name for e in result.entries]
    assert names == ["reduce", "reduce_2", "calibrate", "qc_plots", "rsync", "obslog", "tool", "find", "odd_name", "go"]
    assert all(registry.NAME.match(n) for n in names)
    e = {x.name: x for x in result.entries}
    assert any("copy it into images/astro/scripts/" in c for c in e["reduce"].comments)
    assert not any("images/astro/scripts" in c for c in e["find"].comments)  # /usr/bin is in the image


def test_names_already_in_the_registry_are_never_reused():
    result = import_crontab("0 1 * * * download.sh && index.py\n", "t",
                            reserved_names={"download", "index", "index_2"}, reserved_chains={"cron_daily_0100"})
    assert [e.name for e in result.entries] == ["download_2", "index_3"]
    assert list(result.chains) == ["cron_daily_0100_2"]
    assert result.entries[1].after == "download_2"


AWKWARD = ["yes", "no", "on", "true", "null", "~", "0123", "1e3", "0x1f", "12:30", "- dash", "* star", "& amp",
           "! bang", "@at", "`tick`", "{a: b}", "[a, b]", "a: b", "a #b", "#hash", "  lead", "trail  ", "'single'",
           '"double"', "back\\slash", "Roque de los Muchachos, ñ — 2.4 m", "line\u2028sep\x85nel", "tab\there", "%", "? q", "|", ">", "=x"]


@pytest.mark.parametrize("value", AWKWARD)
def test_awkward_values_round_trip_through_yaml(value):
    quoted = value.replace("%", "\\%")
    text = f'VAL="{value}"\n0 1 * * * echo {shlex.quote(quoted)} x\n'
    result = import_crontab(text, "t")
    assert result.problems == []
    assert result.entries[0].environment == {"VAL": value}
    data = yaml.safe_load(result.to_yaml())
    assert data == result.data()
    assert data["scripts"][0]["environment"]["VAL"] == value
    assert shlex.split(data["scripts"][0]["command"]) == ["echo", value, "x"]
    assert check(data).problems == []


# --------------------------------------------------------------------------------------------
# The command line and --into


def cli(*argv):
    from downlink_airflow.cli import main

    return main(["import-crontab", *map(str, argv)])


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def reg_copy(tmp_path):
    """A copy of dags/registry.yaml (or a small registry when it is not there yet)."""
    text = read(REGISTRY) if os.path.exists(REGISTRY) else (
        "# a registry\nversion: 1\nchains:\n  daily_chain:\n    schedule: '0 11 * * *'\n"
        "scripts:\n  - name: download\n    command: downlink download --night {night}\n    chain: daily_chain\n")
    return write(tmp_path / "registry.yaml", text)


def listing(folder):
    return sorted(os.listdir(folder))


def test_cli_prints_yaml_on_stdout(tmp_path, capsys):
    src = write(tmp_path / "obs.crontab", read(os.path.join(GOLDEN, "mixed.crontab")))
    assert cli(src) == 0
    out = capsys.readouterr().out
    assert out == import_crontab(src.read_text(), str(src)).to_yaml()


def test_cli_with_problems_exits_1_prints_all_and_writes_nothing(tmp_path, reg_copy, capsys):
    src = write(tmp_path / "obs.crontab", read(os.path.join(GOLDEN, "observatory.crontab")))
    before, files = reg_copy.read_bytes(), listing(tmp_path)
    assert cli(src, "--into", reg_copy) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{src}:23: @reboot runs when cron starts" in captured.err
    assert f"{src}:24: unescaped %" in captured.err
    assert f"{src}:26: || (run when the previous command failed)" in captured.err
    assert "nothing written" in captured.err
    assert reg_copy.read_bytes() == before and listing(tmp_path) == files
    assert cli(src) == 1 and capsys.readouterr().out == ""


def test_cli_skip_unsupported_merges_the_rest_and_lists_what_it_skipped(tmp_path, reg_copy, capsys):
    src = write(tmp_path / "obs.crontab", read(os.path.join(GOLDEN, "observatory.crontab")))
    original = reg_copy.read_text()
    assert cli(src, "--into", reg_copy, "--skip-unsupported") == 0
    merged = reg_copy.read_text()
    assert f"#   {src}:23: @reboot runs when cron starts" in merged
    # Appended, never re-dumped: every line of the original is still there, in order.
    ops = difflib.SequenceMatcher(None, original.splitlines(), merged.splitlines(), autojunk=False).get_opcodes()
    assert {tag for tag, *_ in ops} <= {"equal", "insert"}
    old, new = yaml.safe_load(original), yaml.safe_load(merged)
    result = import_crontab(src.read_text(), str(src), reserved_names=merge.registry_names(old)[0],
                            reserved_chains=merge.registry_names(old)[1])
    assert new["chains"] == {**old["chains"], **result.chains_data()}
    assert new["scripts"] == old["scripts"] + result.scripts_data()
    assert {k: v for k, v in new.items() if k not in ("chains", "scripts")} == \
        {k: v for k, v in old.items() if k not in ("chains", "scripts")}
    assert registry.load_registry(str(reg_copy), env={}).problems == []
    assert listing(tmp_path) == ["obs.crontab", "registry.yaml"]  # no temporary file left


def test_importing_twice_never_overwrites(tmp_path, reg_copy):
    src = write(tmp_path / "obs.crontab", "0 1 * * * download.sh && reduce.py\n")
    assert cli(src, "--into", reg_copy) == 0
    once = reg_copy.read_text()
    assert cli(src, "--into", reg_copy) == 0
    twice = reg_copy.read_text()
    data = yaml.safe_load(twice)
    names = [s["name"] for s in data["scripts"]]
    assert len(names) == len(set(names))
    assert "download_2" in names and "reduce_2" in names
    assert "cron_daily_0100" in data["chains"] and "cron_daily_0100_2" in data["chains"]
    ops = difflib.SequenceMatcher(None, once.splitlines(), twice.splitlines(), autojunk=False).get_opcodes()
    assert {tag for tag, *_ in ops} <= {"equal", "insert"}
    if os.path.exists(REGISTRY):  # `download` is a built-in step: the import got download_2, then download_3
        assert "download_3" in names
    assert registry.load_registry(str(reg_copy), env={}).problems == []


@pytest.mark.parametrize("text", [
    "version: 1\nchains: {}\nscripts: []\n",
    "version: 1\n",
    "# nothing yet\n",
    "version: 1\nchains:\n  other:\n    schedule: null\nscripts:\n- name: a\n  command: a\n  chain: other\n# trailing comment\n",
])
def test_into_small_or_empty_registries(tmp_path, text):
    reg = write(tmp_path / "registry.yaml", text)
    src = write(tmp_path / "c", "0 1 * * * x.sh ; y.sh\n")
    assert cli(src, "--into", reg) == 0
    merged = reg.read_text()
    reg_data = registry.load_registry(str(reg), env={})
    assert reg_data.problems == []
    assert [s.name for s in reg_data.scripts][-2:] == ["x", "y"]
    for line in text.splitlines():
        if line.startswith("#"):  # the file's own comments stay, and last
            assert line in merged.splitlines()
    if "# trailing" in text:
        assert merged.rstrip().endswith("# trailing comment")


def test_into_a_flow_style_registry_is_refused_and_left_alone(tmp_path, capsys):
    text = "version: 1\nchains: {c: {schedule: null}}\nscripts: [{name: a, command: a, chain: c}]\n"
    reg = write(tmp_path / "registry.yaml", text)
    src = write(tmp_path / "c", "0 1 * * * x.sh\n")
    assert cli(src, "--into", reg) == 1
    assert "nothing written" in capsys.readouterr().err
    assert reg.read_text() == text and listing(tmp_path) == ["c", "registry.yaml"]


def test_into_writes_atomically_or_not_at_all(tmp_path, reg_copy, monkeypatch):
    src = write(tmp_path / "c", "0 1 * * * x.sh\n")
    before = reg_copy.read_bytes()

    def broken_replace(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(merge.os, "replace", broken_replace)
    assert cli(src, "--into", reg_copy) == 1
    assert reg_copy.read_bytes() == before
    assert listing(tmp_path) == ["c", "registry.yaml"]


def test_into_refuses_a_merge_the_registry_rejects(tmp_path, reg_copy, monkeypatch, capsys):
    src = write(tmp_path / "c", "0 1 * * * x.sh\n")
    before = reg_copy.read_bytes()
    real = merge.validate

    def validate(data, source):
        names = [s.get("name") for s in data.get("scripts") or []]
        return real(data, source) + (["scripts[99] 'x': command: rejected"] if "x" in names else [])

    monkeypatch.setattr(merge, "validate", validate)
    assert cli(src, "--into", reg_copy) == 1
    assert "rejected" in capsys.readouterr().err
    assert reg_copy.read_bytes() == before and listing(tmp_path) == ["c", "registry.yaml"]


def test_into_a_missing_registry_is_bad_usage(tmp_path):
    src = write(tmp_path / "c", "0 1 * * * x.sh\n")
    assert cli(src, "--into", tmp_path / "nope.yaml") == 2
    assert listing(tmp_path) == ["c"]


def test_keeps_the_file_mode(tmp_path, reg_copy):
    os.chmod(reg_copy, 0o640)
    assert cli(write(tmp_path / "c", "0 1 * * * x.sh\n"), "--into", reg_copy) == 0
    assert os.stat(reg_copy).st_mode & 0o777 == 0o640


def test_wrapper_option_and_python_m(tmp_path):
    src = write(tmp_path / "c", "0 1 * * * obs_env reduce.py\n")
    run = subprocess.run([sys.executable, "-m", "downlink_airflow.cli", "import-crontab", str(src), "--wrapper", "obs_env"],
                         capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(run.stdout)["scripts"] == [{"name": "reduce", "command": "reduce.py", "chain": "cron_daily_0100",
                                                       "retries": 0}]


def test_the_importer_does_not_import_airflow():
    code = ("import sys; import downlink_airflow.crontab.cli; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow'], 'airflow imported'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


# --------------------------------------------------------------------------------------------
# The DAGs built from an imported crontab


@pytest.fixture(scope="module")
def build_dags():
    from downlink_airflow import registry_dags as dags_module
    from downlink_airflow.config import Settings

    return lambda reg: dags_module.build_dags(reg, Settings.from_env({"DOWNLINK_TAG": "abc123"}))


def test_dags_have_the_dependencies_and_trigger_rules_of_the_crontab(build_dags):
    reg = check(yaml.safe_load(translate("mixed").to_yaml()), "mixed.yaml")
    dags = build_dags(reg)
    assert set(dags) == {"cron_daily_0600", "cron_daily_0700", "cron_daily_0800"}

    def shape(dag_id):
        dag = dags[dag_id]
        return {t.task_id: (sorted(t.upstream_task_ids), t.trigger_rule) for t in dag.tasks if t.task_id != "watcher"}

    # extract.sh && transform.sh; report.sh
    assert shape("cron_daily_0600") == {
        "extract": ([], "all_success"), "transform": (["extract"], "all_success"), "report": (["transform"], "all_done")}
    # cleanup.sh; fetch.sh && reduce.sh
    assert shape("cron_daily_0700") == {
        "cleanup": ([], "all_success"), "fetch": (["cleanup"], "all_done"), "reduce": (["fetch"], "all_success")}
    # one.sh && two.sh ; three.sh && four.sh
    assert shape("cron_daily_0800") == {
        "one": ([], "all_success"), "two": (["one"], "all_success"), "three": (["two"], "all_done"),
        "four": (["three"], "all_success")}
    # The watcher still fails the run when a step failed, even if an `always` step then succeeded.
    assert dags["cron_daily_0600"].get_task("watcher").upstream_task_ids == {"extract", "transform", "report"}


def test_the_observatory_crontab_becomes_dags(build_dags):
    result = translate("observatory")
    reg = check(yaml.safe_load(result.to_yaml()), "observatory.yaml")
    dags = build_dags(reg)
    assert set(dags) == set(result.chains)
    fetch = dags["cron_daily_0730"].get_task("fetch_night")
    assert fetch.command[:2] == ["sh", "-c"] and fetch.command[2] == "/home/obs/bin/fetch_night.py --night yesterday 2>&1"
    assert fetch.environment["DLCAM_ROOT"] == "/data/dlcam"
    assert dags["cron_daily_0745"].get_task("make_flats").upstream_task_ids == {"make_bias"}
    assert dags["cron_daily_0815"].get_task("qc_plots").trigger_rule == "all_done"
    assert dags["cron_daily_0900"].get_task("cleanup_scratch").trigger_rule == "all_done"
    assert {t.task_id for t in dags["cron_daily_0900"].tasks} == {"night_report", "cleanup_scratch", "header_summary",
                                                                    "watcher"}
    assert dags["cron_weekly"].get_task("verify_tape").trigger_rule == "all_success"
    from airflow.serialization.encoders import encode_timetable

    assert encode_timetable(dags["cron_daily_0730"].timetable)["__var"]["expression"] == "30 7 * * *"
    assert encode_timetable(dags["cron_weekly"].timetable)["__var"]["expression"] in ("@weekly", "0 0 * * 0")


def test_an_imported_crontab_merged_into_the_real_registry_builds(tmp_path, reg_copy, build_dags):
    src = write(tmp_path / "obs.crontab", read(os.path.join(GOLDEN, "observatory.crontab")))
    assert cli(src, "--into", reg_copy, "--skip-unsupported") == 0
    reg = registry.load_registry(str(reg_copy), env={})
    assert reg.problems == []
    dags = build_dags(reg)
    assert "cron_daily_0730" in dags
    if os.path.exists(REGISTRY):
        assert "daily_chain" in dags and dags["daily_chain"].get_task("report").trigger_rule == "all_done"
