"""`downlink versions`: import the astronomy stack and print what is installed.

Fails (exit 1) when a required part is missing or broken, so a bad image is caught before a night
is processed with it.
"""
import importlib
import shutil
import subprocess

from downlink import StepError
from downlink.outputs import write_json

PYTHON_PACKAGES = ("numpy", "scipy", "astropy", "ccdproc", "photutils", "astroscrappy", "psycopg", "pyraf")
IRAF_ZZSETENV = "/usr/lib/iraf/unix/hlib/zzsetenv.def"


def add_parser(sub):
    p = sub.add_parser("versions", help="print the versions of the astronomy stack", description=__doc__)
    p.add_argument("--json", metavar="FILE", help="also write the versions to FILE as JSON")
    return p


def python_versions():
    versions, broken = {}, {}
    for name in PYTHON_PACKAGES:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import failure means a broken image
            broken[name] = f"{type(exc).__name__}: {exc}"
            continue
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions, broken


def iraf_version(path=IRAF_ZZSETENV):
    """IRAF's own version string, read from its setup file (no CL session needed)."""
    with open(path) as fh:
        for line in fh:
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0] == "set" and parts[1] == "version":
                return parts[2].split("=", 1)[1].strip().strip('"')
    raise StepError(f"{path}: no 'set version' line")


def tool_version(command, flag="--version"):
    if not shutil.which(command):
        raise StepError(f"{command} is not installed")
    out = subprocess.run([command, flag], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).strip().splitlines()[0]


def run(args):
    versions, broken = python_versions()
    versions["iraf"] = iraf_version()
    versions["source-extractor"] = tool_version("source-extractor")
    versions["cfitsio"] = tool_version("fitsverify", "-v") if shutil.which("fitsverify") else "libcfitsio-bin"
    width = max(map(len, versions))
    for name, version in versions.items():
        print(f"{name:<{width}}  {version}")
    if args.json:
        write_json(args.json, versions)
    if broken:
        raise StepError("broken: " + "; ".join(f"{k} ({v})" for k, v in broken.items()))
    return 0
