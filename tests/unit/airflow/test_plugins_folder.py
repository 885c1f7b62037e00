"""plugins/ holds plugins: Airflow's plugin manager imports every .py file under plugins/ as a
top-level module, so without plugins/.airflowignore the downlink_airflow package's modules would
also exist as `config`, `health`, `cli`, `registry`, ... (second copies, and importer/CLI code in
the api-server). Run in the Airflow image, in a fresh interpreter, the way every component loads
plugins."""
import json
import os
import subprocess
import sys

import pytest

PLUGINS = "/opt/airflow/plugins"
PROBE = """
import json, sys
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()
plugins, errors = plugins_manager._get_plugins()
import downlink_airflow, downlink_data
print(json.dumps({"modules": sorted(m for m in sys.modules if "." not in m),
                  "plugins": sorted([p.name, str(getattr(p, "source", ""))] for p in plugins), "errors": errors,
                  "package": downlink_airflow.__file__, "data": downlink_data.__file__}))
"""


@pytest.fixture(scope="module")
def found():
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                         env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "AIRFLOW__CORE__LOAD_EXAMPLES": "false"})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_only_the_plugin_entry_file_is_loaded_and_the_package_modules_are_not_top_level(found):
    assert found["errors"] == {}, found["errors"]
    # Airflow's own plugins come from entry points; from plugins/, only the entry file's.
    ours = [(name, source) for name, source in found["plugins"] if "PLUGINS_FOLDER" in source or PLUGINS in source]
    assert [name for name, _ in ours] == ["downlink_reports"], found["plugins"]
    assert ours[0][1].endswith("downlink_plugins.py"), ours
    package_modules = sorted(n[:-3] for n in os.listdir(os.path.join(PLUGINS, "downlink_airflow")) if n.endswith(".py"))
    assert {"config", "health", "cli", "registry", "steps", "arrivals"} <= set(package_modules)
    # The subpackage's modules too (plugins/.airflowignore's downlink_airflow/ covers its folders).
    crontab_modules = [n[:-3] for n in os.listdir(os.path.join(PLUGINS, "downlink_airflow", "crontab"))
                       if n.endswith(".py") and not n.startswith("__")]
    assert {"parse", "schedule", "shell", "command", "merge"} <= set(crontab_modules)
    package_modules += crontab_modules
    top_level = set(found["modules"])
    assert not top_level & set(package_modules), sorted(top_level & set(package_modules))
    assert "downlink_plugins" in top_level  # the entry file, which the plugin manager did load


def test_the_packages_are_installed_and_import_from_the_live_plugins_folder(found):
    # Editable: the code of the mounted plugins/ folder, not a copy baked into the image.
    assert found["package"] == os.path.join(PLUGINS, "downlink_airflow", "__init__.py"), found["package"]
    assert "site-packages" in found["data"], found["data"]
