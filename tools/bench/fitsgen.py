"""Many small, varied FITS files for the ingest benchmark, fast: runs in the astro image.

Five templates are written once with astropy: a science frame with a TAN WCS, a bias without one,
a multi-extension frame (primary header + 4 image extensions, like a mosaic camera), the science
frame tile-compressed (fpack's format, .fits.fz) and gzipped (.fits.gz). Each file is a template
with fixed-width placeholders in OBJECT, DATE-OBS and SEQNUM patched in place, so every file has
its own bytes and headers while 10,000 of them take seconds, not minutes.
Usage: python3 fitsgen.py OUT N   (writes OUT/<name> for N files; names sort in time order)
"""
import gzip
import io
import sys

import numpy as np
from astropy.io import fits

MIX = (("sci", ".fits", 6), ("bias", ".fits", 1), ("mef", ".fits", 1), ("fz", ".fits.fz", 1), ("gz", ".fits.gz", 1))
SIZE = 64
OBJ, DATE, SEQ = "OBJ@@@@@@@", "2026-11-24T@@:@@:@@.000", "@@@@@@@"


def base_header(kind):
    h = fits.Header()
    h["INSTRUME"], h["TELESCOP"], h["OBSERVAT"] = "DLCAM", "Downlink 1.0m", "ORM"
    h["IMAGETYP"] = "BIAS" if kind == "bias" else "OBJECT"
    h["OBJECT"] = OBJ
    h["SEQNUM"] = (SEQ, "frame counter")
    h["DATE-OBS"] = (DATE, "start of exposure, UTC")
    h["MJD-OBS"] = 61003.123456
    h["EXPTIME"] = 0.0 if kind == "bias" else 120.0
    h["GAIN"], h["RDNOISE"], h["CCD-TEMP"] = 1.5, 6.0, -100.0
    if kind != "bias":
        h["FILTER"], h["AIRMASS"] = "V", 1.234
        h["RA"], h["DEC"], h["EQUINOX"], h["RADESYS"] = "00:42:44.3", "+41:16:09", 2000.0, "ICRS"
    for i in range(12):
        h[f"HIERARCH DL TEMP{i}"] = 10.0 + i  # the housekeeping cards real cameras carry
    h.add_history("synthetic frame for the Downlink ingest benchmark")
    return h


def wcs_cards(h, crval1=10.6847):
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRPIX1"], h["CRPIX2"] = SIZE / 2, SIZE / 2
    h["CRVAL1"], h["CRVAL2"] = crval1, 41.269
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -1.6667e-4, 0.0, 0.0, 1.6667e-4
    return h


def template(kind):
    rng = np.random.default_rng(1)
    data = lambda: (1000 + rng.normal(0, 5, (SIZE, SIZE))).astype(np.int16)  # noqa: E731
    buf = io.BytesIO()
    if kind == "mef":
        hdus = [fits.PrimaryHDU(header=base_header("sci"))]
        for amp in range(4):
            eh = wcs_cards(fits.Header(), 10.6847 + 0.01 * amp)
            eh["EXTNAME"] = f"AMP{amp + 1}"
            hdus.append(fits.ImageHDU(data(), header=eh))
        fits.HDUList(hdus).writeto(buf)
    elif kind == "fz":
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data(), header=wcs_cards(base_header("sci")),
                                                           compression_type="RICE_1")]).writeto(buf)
    else:
        h = base_header(kind)
        if kind != "bias":
            wcs_cards(h)
        fits.PrimaryHDU(data(), header=h).writeto(buf)
    return buf.getvalue()


def patch(raw, i):
    seconds = i % 86400
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    for old, new in ((OBJ, f"OBJ{i:07d}"), (DATE, f"2026-11-24T{clock}.000"), (SEQ, f"{i:07d}")):
        assert old.encode() in raw, old
        raw = raw.replace(old.encode(), new.encode())
    return raw


def main(out, n):
    import os
    os.makedirs(out, exist_ok=True)
    templates = {kind: template(kind) for kind, _, _ in MIX}
    cycle = [(kind, ext) for kind, ext, weight in MIX for _ in range(weight)]
    counts = {}
    for i in range(n):
        kind, ext = cycle[i % len(cycle)]
        raw = patch(templates[kind], i)
        if kind == "gz":
            raw = gzip.compress(raw, compresslevel=6, mtime=0)
        with open(os.path.join(out, f"DLCAM.{i:06d}{ext}"), "wb") as fh:
            fh.write(raw)
        counts[kind] = counts.get(kind, 0) + 1
    print(counts)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
