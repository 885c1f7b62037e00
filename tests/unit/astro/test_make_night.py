"""The sample-night generator: realistic, complete headers, deterministic."""
import argparse
import os

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from downlink import make_night
from downlink.checksum import sha256_file

NIGHT = "2026-11-24"


def small_args(**over):
    args = dict(n_bias=2, n_dark=1, n_flat=1, n_science=1)
    args.update(over)
    return argparse.Namespace(**args)


@pytest.fixture(scope="module")
def night_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("archive")
    import datetime
    make_night.make_night(datetime.date.fromisoformat(NIGHT), str(out), seed=7, size=64, args=small_args())
    return out / NIGHT


def frames(folder):
    return {n: fits.open(folder / n)[0] for n in sorted(os.listdir(folder)) if n.endswith(".fits")}


def test_counts_per_type_and_manifest(night_dir):
    kinds = [h.header["IMAGETYP"] for h in frames(night_dir).values()]
    # 2 biases, 1 dark at each of 2 times, 1 flat in each of 2 filters, 3 targets x 2 filters x 1
    assert {k: kinds.count(k) for k in set(kinds)} == {"BIAS": 2, "DARK": 2, "FLAT": 2, "OBJECT": 6}
    import json
    manifest = json.loads((night_dir / "manifest.json").read_text())
    assert manifest["night"] == NIGHT and len(manifest["files"]) == 12
    for entry in manifest["files"]:
        assert entry["sha256"] == sha256_file(night_dir / entry["name"])
        assert entry["size"] == os.path.getsize(night_dir / entry["name"])


def test_same_seed_same_bytes(tmp_path, night_dir):
    import datetime
    make_night.make_night(datetime.date.fromisoformat(NIGHT), str(tmp_path), seed=7, size=64, args=small_args())
    assert (tmp_path / NIGHT / "manifest.json").read_text() == (night_dir / "manifest.json").read_text()


def test_headers_are_complete(night_dir):
    for name, hdu in frames(night_dir).items():
        h = hdu.header
        for key in ("TELESCOP", "INSTRUME", "IMAGETYP", "OBJECT", "EXPTIME", "DATE-OBS", "MJD-OBS", "GAIN", "RDNOISE"):
            assert key in h, f"{name} lacks {key}"
        assert h["BITPIX"] == 16 and h["BZERO"] == 32768
        if h["IMAGETYP"] == "OBJECT":
            assert 1.0 <= h["AIRMASS"] < 3.0 and h["FILTER"] in ("V", "R") and "RA" in h


def test_science_wcs_points_at_the_target(night_dir):
    targets = {name: SkyCoord(ra * u.deg, dec * u.deg) for name, ra, dec in make_night.TARGETS}
    for hdu in frames(night_dir).values():
        if hdu.header["IMAGETYP"] != "OBJECT":
            continue
        centre = WCS(hdu.header).pixel_to_world(31.5, 31.5)
        assert centre.separation(targets[hdu.header["OBJECT"]]).arcsec < 10


def test_detector_signatures(night_dir):
    by_type = {}
    for hdu in frames(night_dir).values():
        by_type.setdefault(hdu.header["IMAGETYP"], []).append(hdu)
    bias = np.median(by_type["BIAS"][0].data)
    long_dark = max(by_type["DARK"], key=lambda h: h.header["EXPTIME"]).data.astype(float)
    assert abs(bias - make_night.BIAS_ADU) < 5
    assert long_dark.max() > bias + 100  # hot pixels
    flat = by_type["FLAT"][0].data.astype(float)
    column = 64 * 3 // 10
    assert 15000 < np.median(flat) < 35000
    assert np.median(flat[:, column]) < 0.2 * np.median(flat)  # the bad column
