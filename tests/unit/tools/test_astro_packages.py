"""The astro image's extra packages for the team's scripts (issue 16), checked statically on the
host: the Dockerfile installs images/astro/packages.txt (apt) and requirements.txt (pip, offline
from the wheelhouse the build copies in), both ship empty, and the image's last layer writes the
PATH list `make check` reads (python -m pytest tests/unit/tools)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ASTRO = ROOT / "images" / "astro"
DOCKERFILE = (ASTRO / "Dockerfile").read_text()


def requirements(path):
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def test_both_lists_ship_with_comments_and_no_packages():
    for name in ("packages.txt", "requirements.txt"):
        text = (ASTRO / name).read_text()
        assert text.startswith("#"), f"{name}: starts with its explanation"
        assert requirements(ASTRO / name) == [], f"{name}: the default image gets no extra package"


def test_the_dockerfile_installs_both_lists_in_a_layer_of_their_own_after_the_base_stack():
    copy = DOCKERFILE.index("COPY packages.txt requirements.txt /tmp/extra/")
    assert DOCKERFILE.index("iraf iraf-noao") < DOCKERFILE.index("python3-pip") < copy
    assert "COPY wheelhouse/ /tmp/extra/wheelhouse/" in DOCKERFILE
    run = DOCKERFILE[copy:].split("\nRUN ", 1)[1].split("\n\n", 1)[0]
    assert "/tmp/extra/packages.txt" in run and "apt-get install -y --no-install-recommends $pkgs" in run
    pip = re.search(r"pip install ([^\n\\]*\\\n)*[^\n]*", run).group(0)
    for option in ("--no-index", "--find-links /tmp/extra/wheelhouse", "--no-deps", "--break-system-packages",
                   "-r /tmp/extra/requirements.txt"):
        assert option in pip, option
    assert "pip check" in run
    # Before the team's scripts: changing a script does not reinstall packages.
    assert copy < DOCKERFILE.index("COPY scripts/ /opt/downlink/scripts/")


def test_the_wheelhouse_reaches_the_build_context():
    build = (ROOT / "tools" / "build-images.sh").read_text()
    assert "astro) astro_wheelhouse; build astro images/astro" in build
    assert "build/astro-wheelhouse" in build
    bootstrap = (ROOT / "tools" / "bootstrap.sh").read_text()
    assert 'req="$ROOT/images/astro/requirements.txt"' in bootstrap and "pip download" in bootstrap
    assert (ASTRO / "wheelhouse" / ".gitignore").read_text().splitlines()[1:] == ["*", "!.gitignore"]


def test_the_last_layer_writes_the_path_list_after_path_is_final():
    scripts = DOCKERFILE.index("COPY scripts/ /opt/downlink/scripts/")
    assert DOCKERFILE.index("ENV PATH=/opt/downlink/scripts:${PATH}") < scripts
    assert DOCKERFILE.index("> /usr/share/downlink/path-programs.txt") > scripts
    assert "ENV PATH" not in DOCKERFILE[scripts:]
