"""Calibration stages on a generated night (no database): masters, reduction, noise."""
import argparse
import datetime
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

from downlink import calibrate, make_night, masters

NIGHT = datetime.date(2026, 11, 24)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    out = tmp_path_factory.mktemp("archive")
    args = argparse.Namespace(n_bias=3, n_dark=2, n_flat=3, n_science=1)
    make_night.make_night(NIGHT, str(out), seed=3, size=96, args=args)
    folder = out / str(NIGHT)
    by_type = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".fits"):
            h = fits.getheader(folder / name)
            by_type.setdefault(h["IMAGETYP"], []).append((str(folder / name), h))
    return by_type


@pytest.fixture(scope="module")
def built(night):
    limit = 64 * 1024 * 1024
    bias = masters.build_bias([p for p, _ in night["BIAS"]], limit)
    dark = masters.build_dark([p for p, _ in night["DARK"]], bias, limit)
    flat = masters.build_flat([p for p, h in night["FLAT"] if h["FILTER"] == "V"], bias, dark, limit)
    return bias, dark, flat


def test_master_bias_recovers_the_bias_level(built):
    assert abs(np.median(built[0].data) - make_night.BIAS_ADU) < 2


def test_master_dark_is_a_rate_in_adu_per_second(built):
    rate = np.median(built[1].data)
    assert rate == pytest.approx(make_night.DARK_E_PER_S / make_night.GAIN, abs=0.02)
    assert built[1].header["EXPTIME"] == 1.0


def test_master_flat_is_normalised_and_shows_the_bad_column(built):
    flat = built[2].data
    assert np.median(flat) == pytest.approx(1.0, abs=1e-3)
    assert np.median(flat[:, 96 * 3 // 10]) < calibrate.BAD_RESPONSE


def test_reduction_lowers_noise_repairs_bad_pixels_and_is_in_electrons(night, built):
    path = next(p for p, h in night["OBJECT"] if h["FILTER"] == "V")
    ccd, noise_raw, noise_reduced = calibrate.reduce_frame(masters.read_raw(path), *built)
    # The noise measured here with numpy and astropy (a 3-sigma clipped standard deviation of the
    # frame's central half, in electrons), not taken from calibrate's own report.
    def clipped_std(data):
        ny, nx = data.shape
        return float(sigma_clipped_stats(data[ny // 4: ny - ny // 4, nx // 4: nx - nx // 4], sigma=3.0, maxiters=5)[2])

    with fits.open(path) as hdul:
        raw_electrons = (hdul[0].data.astype(np.float64) - built[0].data) * float(hdul[0].header["GAIN"])
    expected_raw, expected_reduced = clipped_std(raw_electrons), clipped_std(np.asarray(ccd.data, dtype=np.float64))
    assert expected_reduced < 0.9 * expected_raw
    assert (noise_raw, noise_reduced) == (pytest.approx(expected_raw, rel=1e-4), pytest.approx(expected_reduced, rel=1e-4))
    assert np.isfinite(ccd.data).all()
    column = 96 * 3 // 10
    # the repaired column looks like its neighbours (sky level in electrons)
    sky = np.median(ccd.data)
    assert abs(np.median(ccd.data[:, column]) - sky) < 0.1 * sky
    assert str(ccd.unit) == "electron"


def test_stem_drops_fits_suffixes():
    assert calibrate.stem("a.fits") == "a" and calibrate.stem("b.fits.fz") == "b" and calibrate.stem("c.FIT") == "c"
