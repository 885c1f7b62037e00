"""The image's PATH list (/usr/share/downlink/path-programs.txt, its last layer), which `make check`
reads: every program on PATH by name and by absolute path, the team's scripts included."""
import os

LIST = "/usr/share/downlink/path-programs.txt"


def test_the_path_list_names_every_program_on_path_by_name_and_path():
    with open(LIST, encoding="utf-8") as fh:
        listed = set(fh.read().split("\n")) - {""}
    for folder in os.environ["PATH"].split(":"):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                assert name in listed and path in listed, path
    assert {"header-summary", "/opt/downlink/scripts/header-summary", "downlink", "python3", "sh"} <= listed
