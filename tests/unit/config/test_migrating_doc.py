"""docs/migrating-from-cron.md against the repository: its crontab is the importer's golden case
(tests/unit/airflow/crontab/migrating.crontab), and each `make TARGET VAR=...` it shows is a target
of the Makefile that uses those variables. Runs on the host (make test-unit-config)."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DOC = os.path.join(ROOT, "docs", "migrating-from-cron.md")
GOLDEN = os.path.join(ROOT, "tests", "unit", "airflow", "crontab", "migrating.crontab")


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_the_guides_crontab_is_the_golden_case():
    block = re.search(r"```crontab\n(.*?)```", read(DOC), re.S).group(1)
    golden = "".join(line for line in read(GOLDEN).splitlines(True) if not line.startswith("# args:"))
    assert block == golden
    assert len([line for line in golden.splitlines() if line.strip()]) >= 20


def test_the_messages_it_quotes_are_the_importers():
    golden_yaml = read(GOLDEN[: -len(".crontab")] + ".yaml")
    for quoted in re.findall(r"`(line \d+: script not found[^`]*)`", read(DOC)):
        assert f"# {quoted} (copy it into" in golden_yaml, quoted


def test_every_make_command_is_a_real_target_with_those_variables():
    makefile = read(os.path.join(ROOT, "Makefile"))
    commands = re.findall(r"^\s*(make [^\n`]+)$", read(DOC), re.M) + re.findall(r"`(make [^`]+)`", read(DOC))
    assert {c.split()[1] for c in commands} >= {"import-crontab", "check", "deploy", "try"}
    for command in commands:
        target, variables = command.split()[1], re.findall(r"\b([A-Z]+)=", command)
        recipe = re.search(rf"^{re.escape(target)}:.*?(?=^\S)", makefile + "\nEND", re.M | re.S)
        assert recipe, f"{command}: no target {target!r} in the Makefile"
        for var in variables:
            assert f"$({var})" in recipe.group(0), f"{command}: target {target} does not use {var}"


def test_the_scripts_it_copies_are_in_the_golden_scripts_folder():
    folder = os.path.join(os.path.dirname(GOLDEN), "migrating.d")
    named = set(re.findall(r"/home/obs/(?:bin|pipeline)/([\w.]+)", read(GOLDEN)))
    assert named - set(os.listdir(folder)) == {"sync_clock.sh"}  # the one the guide shows as not found
