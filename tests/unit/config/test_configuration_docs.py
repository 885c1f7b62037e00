"""docs/configuration.md against the code: every setting of the two settings modules (Airflow side:
plugins/downlink_airflow/config.py; step side: images/astro/downlink/settings.py) and of the compose
files has one row there, with the default the code has, and compose gives no second default to a
setting the modules own. Runs on the host (make test-unit-config): both modules are stdlib only."""
import glob
import importlib.util
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROW = re.compile(r"^\|\s*(`[A-Z][A-Z0-9_]*`(?:\s*,\s*`[A-Z][A-Z0-9_]*`)*)\s*\|\s*([a-z]+)\s*\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*$")
# ${X:-default}, the default possibly one ${Y:-...} itself (compose nests them).
REFERENCE = re.compile(r"\$\{(DOWNLINK_[A-Z0-9_]+)(?:(:?[-?])((?:[^{}]|\$\{[^{}]*\})*))?\}")
PASSED_THROUGH = re.compile(r"^\s+(DOWNLINK_[A-Z0-9_]+):\s*$", re.M)
COMPOSE_FILES = sorted(glob.glob(os.path.join(ROOT, "docker-compose*.yaml")))


def load(name, path, package_dir=None):
    """A module (or package) of the repository by its file, under a name of its own, as the image
    would import it; nothing is added to sys.path."""
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=package_dir and [package_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def airflow_settings():
    return load("docs_test_airflow_config", os.path.join(ROOT, "plugins", "downlink_airflow", "config.py")).variables()


@pytest.fixture(scope="module")
def step_settings():
    package = os.path.join(ROOT, "images", "astro", "downlink")
    saved = sys.modules.pop("downlink", None)
    try:
        load("downlink", os.path.join(package, "__init__.py"), package)
        from downlink import settings

        return settings.variables()
    finally:
        for name in [n for n in sys.modules if n == "downlink" or n.startswith("downlink.")]:
            del sys.modules[name]
        if saved is not None:
            sys.modules["downlink"] = saved


@pytest.fixture(scope="module")
def table():
    """{variable: (side, default cell)} from docs/configuration.md; each variable once."""
    rows = {}
    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as fh:
        for line in fh:
            m = ROW.match(line)
            if m:
                for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", m.group(1)):
                    assert name not in rows, f"docs/configuration.md: {name} has two rows"
                    rows[name] = (m.group(2), m.group(3))
    assert len(rows) > 30, "docs/configuration.md: the configuration table was not found"
    return rows


def documented_default(cell):
    """The values a default cell names: `x` (backticked) ones, or '' for 'empty'."""
    values = re.findall(r"`([^`]*)`", cell)
    return values if values else ([""] if cell.startswith("empty") else [])


def compose_defaults():
    """{variable: {default, ...}} for every ${DOWNLINK_X:-default} in the compose files, and the
    set of every DOWNLINK_* variable the compose files mention."""
    defaults, mentioned = {}, set()
    for path in COMPOSE_FILES:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        found = REFERENCE.findall(text)
        while found:
            name, kind, value = found.pop()
            mentioned.add(name)
            if kind in (":-", "-"):
                defaults.setdefault(name, set()).add(value)
                found += REFERENCE.findall(value)  # a reference nested in the default
        mentioned.update(PASSED_THROUGH.findall(text))
    return defaults, mentioned


@pytest.mark.parametrize("side", ["airflow", "steps"])
def test_every_setting_has_its_row_with_its_default(side, airflow_settings, step_settings, table):
    settings = airflow_settings if side == "airflow" else step_settings
    for name, (default, _doc) in settings.items():
        assert name in table, f"{name} ({side} settings) is missing from docs/configuration.md"
        documented_side, cell = table[name]
        assert documented_side in (side, "both"), f"{name}: docs/configuration.md says side {documented_side}, it is a {side} setting"
        assert documented_default(cell) == [default], f"{name}: docs/configuration.md gives the default {cell}, the code {default!r}"


def test_both_sides_agree(airflow_settings, step_settings, table):
    for name, (side, _cell) in table.items():
        if side == "both":
            assert name in airflow_settings and name in step_settings, f"{name}: 'both' but not a setting of both modules"
            assert airflow_settings[name][0] == step_settings[name][0], f"{name}: the two sides' defaults differ"
        elif side in ("airflow", "steps"):
            settings = airflow_settings if side == "airflow" else step_settings
            assert name in settings, f"{name}: docs/configuration.md lists it as a {side} setting, which it is not (any more)"
            other = step_settings if side == "airflow" else airflow_settings
            assert name not in other, f"{name}: read on both sides: mark it 'both'"


def test_compose_adds_no_second_default_and_documents_its_own(airflow_settings, step_settings, table):
    defaults, mentioned = compose_defaults()
    owned = set(airflow_settings) | set(step_settings)
    for name in mentioned:
        assert name in table, f"{name} (docker-compose*.yaml) is missing from docs/configuration.md"
    for name, values in defaults.items():
        if name in owned:
            # Only "empty", and only where the module's default is empty too.
            code = (airflow_settings.get(name) or step_settings.get(name))[0]
            assert values == {""} and code == "", f"{name}: docker-compose gives it a default {values} of its own; pass it through"
        else:
            side, cell = table[name]
            assert side == "compose", f"{name}: its default is in docker-compose, docs/configuration.md says side {side}"
            assert values <= set(documented_default(cell)), f"{name}: docker-compose's default {values} is not the documented {cell}"
    for name, (side, _cell) in table.items():
        if side == "compose":
            assert name in mentioned, f"{name}: a compose setting that no compose file reads"


def test_make_env_writes_only_documented_variables_and_no_defaults(table, airflow_settings, step_settings):
    with open(os.path.join(ROOT, "tools", "make-env.sh"), encoding="utf-8") as fh:
        text = fh.read()
    written = re.findall(r"^\s*(?:default_var|set_var)\s+([A-Z][A-Z0-9_]*)\s", text, re.M)
    assert written, "tools/make-env.sh: no variables found"
    for name in written:
        assert name in table, f"{name} (tools/make-env.sh) is missing from docs/configuration.md"
        # Only generated secrets and the machine's facts (the secrets folder: this checkout's
        # absolute path): a default of a module's setting belongs there.
        if name in airflow_settings or name in step_settings:
            assert name in ("DOWNLINK_TAG", "DOWNLINK_ADMIN_PASSWORD", "DOWNLINK_SECRETS_DIR"), \
                f"{name}: tools/make-env.sh writes a default for a module's setting"
