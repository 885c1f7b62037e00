"""`make check` knows the image: registry.programs_missing against the astro image's PATH list
(names and absolute paths, as /usr/share/downlink/path-programs.txt holds them)."""
import textwrap

import pytest

from downlink_airflow.command_programs import programs_of  # noqa: E402
from downlink_airflow.registry import load_registry_text, programs_missing  # noqa: E402

PROGRAMS = {"downlink", "header-summary", "/opt/downlink/scripts/header-summary", "python3", "/usr/bin/python3",
            "sh", "/usr/bin/sh", "gzip", "/usr/bin/gzip", "grep", "/usr/bin/grep", "nice", "/usr/bin/nice"}


def registry(*entries):
    scripts = "\n".join(textwrap.indent(textwrap.dedent(e).strip(), "  ") for e in entries)
    text = "version: 1\nchains:\n  c:\n    schedule: null\nscripts:\n" + scripts + "\n"
    reg = load_registry_text(text, "t.yaml", env={})
    assert reg.problems == []
    return reg


def test_a_program_the_image_lacks_is_a_problem_naming_the_entry():
    reg = registry("""
        - name: ok
          command: header-summary --night {night}
          chain: c
        - name: reduce
          command: reduce.py --night {night}
          chain: c
        """)
    assert programs_missing(reg, PROGRAMS, "downlink/astro:t") == [
        "entry 'reduce': command: 'reduce.py' is not in downlink/astro:t on its PATH"]


def test_absolute_paths_are_checked_too_and_get_the_copy_hint():
    reg = registry("""
        - name: by_path
          command: /opt/downlink/scripts/header-summary --night {night}
          chain: c
        - name: host_path
          command: [/home/obs/bin/header-summary, --night, "{night}"]
          chain: c
        """)
    [problem] = programs_missing(reg, PROGRAMS)
    assert problem.startswith("entry 'host_path': command: '/home/obs/bin/header-summary' is not in the astro "
                              "image by that path (did you mean 'header-summary'?)")
    assert "copy the script into images/astro/scripts/" in problem


def test_a_close_name_is_suggested():
    reg = registry("""
        - name: typo
          command: header-sumary --night {night}
          chain: c
        """)
    assert programs_missing(reg, PROGRAMS) == [
        "entry 'typo': command: 'header-sumary' is not in the astro image on its PATH (did you mean 'header-summary'?)"]


def test_shell_commands_are_checked_simple_command_by_simple_command():
    reg = registry("""
        - name: shell
          command: "cd /data && X=1 nice gzip -9 {run_dir}/a 2>/dev/null | grep x; missing-tool > /dev/null || true"
          chain: c
        """)
    assert programs_missing(reg, PROGRAMS) == [
        "entry 'shell': command: 'missing-tool' is not in the astro image on its PATH"]


def test_other_images_are_not_checked():
    reg = registry("""
        - name: elsewhere
          command: only-there
          image: downlink/other:1.0
          chain: c
        """)
    assert programs_missing(reg, PROGRAMS) == []


@pytest.mark.parametrize("command, shell, expected", [
    (["downlink", "index"], False, ["downlink"]),
    ("downlink index --night {night}", False, ["downlink"]),
    ("a && b; c | d", True, ["a", "b", "c", "d"]),
    ("if [ -f x ]; then a; else b; fi", True, ["a", "b"]),
    ("FOO=1 BAR=$X run >out.log 2>&1", True, ["run"]),
    ("echo $(date) > /data/x; cd /tmp && ./local.sh", True, ["date"]),  # builtins, relative paths
    ("echo $((1 + 2))", True, None),
    ("$PROG --night x", True, []),  # computed: cannot tell
    ("for f in a b; do x; done", True, None),  # not checked
    ("cat <<EOF\nx\nEOF", True, None),
    ("a 'unbalanced", True, None),
])
def test_programs_of(command, shell, expected):
    assert programs_of(command, shell) == expected
