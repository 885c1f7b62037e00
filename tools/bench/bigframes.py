"""Large frames for the ingest benchmark's bytes measurement: runs in the astro image.
One 40 MB frame (float32, a TAN WCS, about 60 header cards) is written with astropy, then copied N
times with its OBJECT patched in place, so every file has its own bytes. The folder gets a
manifest (the download step's input).
Usage: python3 bigframes.py OUT N
"""
import os
import sys

import numpy as np
from astropy.io import fits

from downlink.manifest import write_manifest

SIDE = 3240  # 3240 x 3240 x 4 bytes = 42 MB


def main(out, n):
    os.makedirs(out, exist_ok=True)
    hdu = fits.PrimaryHDU(np.random.default_rng(1).normal(1000, 10, (SIDE, SIDE)).astype(np.float32))
    h = hdu.header
    h["OBJECT"], h["IMAGETYP"], h["DATE-OBS"], h["EXPTIME"] = "BIG@@@@", "OBJECT", "2026-11-24T01:02:03", 60.0
    h["CTYPE1"], h["CTYPE2"], h["CRVAL1"], h["CRVAL2"] = "RA---TAN", "DEC--TAN", 10.68, 41.27
    h["CRPIX1"], h["CRPIX2"], h["CDELT1"], h["CDELT2"] = SIDE / 2, SIDE / 2, -1e-4, 1e-4
    template = os.path.join(out, ".template")
    hdu.writeto(template, overwrite=True)
    data = bytearray(open(template, "rb").read())
    os.unlink(template)
    at = data.index(b"BIG@@@@")
    for i in range(n):
        data[at:at + 7] = f"BIG{i:04d}".encode()
        with open(os.path.join(out, f"big{i:04d}.fits"), "wb") as fh:
            fh.write(data)
    write_manifest(out)
    print(f"{n} files of {len(data) / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
