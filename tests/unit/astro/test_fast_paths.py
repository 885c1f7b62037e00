"""The index and calibration steps' fast paths (issue 7 benchmarks) give what the slow, obvious
library calls give: ccdproc's combine and flat_correct/subtract_dark, astropy.time, and WCS built
from the whole header."""
import os
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.stats import mad_std
from astropy.time import Time
from astropy.wcs import WCS
from ccdproc import combine, flat_correct, gain_correct, subtract_bias, subtract_dark

from downlink import calibrate, fitsmeta, masters


def frames(n=7, shape=(40, 30), seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        data = (1000 + 10 * i + rng.normal(0, 5, shape)).astype(np.float32)
        data[rng.integers(0, shape[0], 6), rng.integers(0, shape[1], 6)] += 5000  # outliers to clip
        out.append(CCDData(data, unit=u.adu, header=fits.Header({"INSTRUME": "T", "EXPTIME": 10.0 + i})))
    return out


CCDPROC_CLIP = {"method": "median", "sigma_clip": True, "sigma_clip_low_thresh": 5, "sigma_clip_high_thresh": 5,
                "sigma_clip_func": np.ma.median, "sigma_clip_dev_func": mad_std}


@pytest.mark.parametrize("n", [6, 7])  # even and odd counts: the median of two middle values, or one
def test_clipped_median_is_ccdprocs_sigma_clipped_median(n):
    ccds = frames(n)
    ours = masters.clipped_median(ccds, mem_limit=40 * 30 * n * 4 * 4 * 3)  # several row blocks
    theirs = combine(ccds, mem_limit=64e6, **CCDPROC_CLIP)
    assert np.allclose(ours.data, theirs.data, rtol=0, atol=1e-3)
    assert ours.header["INSTRUME"] == "T" and ours.unit == u.adu


def test_clipped_median_with_scaling_is_ccdprocs():
    ccds = frames(5)
    scale = lambda a: 1.0 / np.ma.median(a)  # noqa: E731 - the flat's normalisation, as before
    ours = masters.clipped_median(ccds, 64e6, scale=lambda a: 1.0 / np.median(a))
    theirs = combine(ccds, mem_limit=64e6, scale=scale, **CCDPROC_CLIP)
    assert np.allclose(ours.data, theirs.data, rtol=1e-6, atol=0)


def test_clipped_median_ignores_non_finite_pixels():
    ccds = frames(5)
    ccds[0].data[3, 4] = np.nan
    ours = masters.clipped_median(ccds, 64e6)
    assert np.isfinite(ours.data).all()
    assert ours.data[3, 4] == pytest.approx(np.median([c.data[3, 4] for c in ccds[1:]]), abs=1e-3)


def test_calibration_arithmetic_is_ccdprocs():
    raw, bias, dark, flat = frames(4, seed=2)
    dark = CCDData(np.full(raw.shape, 0.3, np.float32), unit=u.adu, header=fits.Header({"EXPTIME": 1.0}))
    flat = CCDData(np.linspace(0.2, 1.2, raw.size, dtype=np.float32).reshape(raw.shape), unit=u.adu)
    raw.header["GAIN"] = 1.5
    expected = subtract_dark(subtract_bias(raw, bias), dark, dark_exposure=1.0 * u.s,
                             data_exposure=raw.header["EXPTIME"] * u.s, scale=True)
    expected = gain_correct(flat_correct(expected, flat, min_value=calibrate.BAD_RESPONSE), 1.5 * u.electron / u.adu)
    for _ in range(2):  # the second time uses the scaled dark and normalised flat kept on the masters
        got = calibrate.apply_calibrations(raw, bias, dark, flat)
        assert np.array_equal(got.data, expected.data) and got.unit == expected.unit


@pytest.mark.parametrize("text", ["2026-11-24T03:04:05", "2026-11-24T03:04:05.123456", "1994-05-19T23:59:59.5",
                                  "2026-11-24T03:04"])
def test_iso_time_is_astropys(text):
    ours = fitsmeta.iso_time(text)
    t = Time(text, format="isot", scale="utc")
    assert ours.mjd == pytest.approx(t.mjd, abs=1e-9)
    assert ours.datetime == t.to_datetime(timezone=ours.datetime.tzinfo)


def test_iso_time_refuses_what_astropy_refuses():
    with pytest.raises(ValueError):
        fitsmeta.iso_time("2026-13-40T00:00:00")


def test_a_leap_second_is_a_note_not_a_crash():
    # astropy reads 23:59:60 but a datetime cannot hold it: the date is left to MJD-OBS, with a note
    notes = []
    date = fitsmeta.parse_date_obs([fits.Header({"DATE-OBS": "2016-12-31T23:59:60", "MJD-OBS": 57753.5})], notes)
    assert date.mjd == pytest.approx(57753.5)
    assert any("leap second" in n for n in notes)


def test_wcs_from_the_wcs_cards_is_the_wcs_of_the_whole_header(real_fits):
    checked = 0
    for name in sorted(os.listdir(real_fits)):
        if not name.endswith((".fits", ".fit", ".fz")) or "corrupt" in name:
            continue
        with fits.open(os.path.join(real_fits, name)) as hdul:
            for hdu in fitsmeta.image_hdus(hdul):
                small = fitsmeta.wcs_header(hdu.header)
                if small is None:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    full, cut = WCS(hdu.header, fobj=hdul), WCS(small, fobj=hdul)
                    pix = [[0, 0], [hdu.header["NAXIS1"] / 2, hdu.header["NAXIS2"] / 2]]
                    if full.has_celestial:
                        assert np.allclose(full.celestial.all_pix2world(pix, 0),
                                           cut.celestial.all_pix2world(pix, 0), rtol=0, atol=1e-10), name
                        checked += 1
    assert checked >= 4
