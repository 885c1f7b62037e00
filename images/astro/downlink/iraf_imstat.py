"""`downlink iraf-imstat`: run IRAF's imstatistics through PyRAF and print/write its numbers.

The default image is dev$pix, the M51 test image that IRAF ships. Works unattended: no login.cl,
no terminal, no display (see downlink-env).
"""

from downlink import StepError
from downlink.outputs import write_json

FIELDS = ("image", "npix", "mean", "midpt", "mode", "stddev", "skew", "kurtosis", "min", "max")


def add_parser(sub):
    p = sub.add_parser("iraf-imstat", help="IRAF imstatistics of an image via PyRAF", description=__doc__)
    p.add_argument("--image", default="dev$pix", help="IRAF image name or FITS path (default: dev$pix)")
    p.add_argument("--out", metavar="FILE", help="write the statistics to FILE as JSON")
    return p


def parse_imstat_line(line, image):
    """Turn one unformatted imstatistics row (fields=FIELDS, format=no) into a dict."""
    values = line.split()
    if len(values) != len(FIELDS):
        raise StepError(f"imstatistics on {image}: unexpected output {line!r}")
    stats = {"image": image, "npix": int(values[1])}
    for name, value in zip(FIELDS[2:], values[2:]):
        stats[name] = float(value) if value.upper() != "INDEF" else None
    return stats


def imstatistics(image):
    from pyraf import iraf  # slow import (starts the CL): only when the step runs

    lines = iraf.imstatistics(image, fields=",".join(FIELDS), format="no", Stdout=1)
    rows = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if len(rows) != 1:
        raise StepError(f"imstatistics on {image}: expected one result row, got {lines!r}")
    stats = parse_imstat_line(rows[0], image)
    stats["iraf_version"] = iraf.envget("version")
    return stats


def run(args):
    stats = imstatistics(args.image)
    for name, value in stats.items():
        print(f"{name:>12} = {value}")
    if args.out:
        write_json(args.out, stats)
    return 0
