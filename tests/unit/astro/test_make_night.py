"""The sample-night generator: realistic, complete headers, sane times, deterministic."""
import argparse
import datetime
import hashlib
import json
import os
import re

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, get_sun
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from photutils.detection import find_peaks
from scipy.ndimage import median_filter

from downlink import cli, make_night

NIGHT = "2026-11-24"
SIZE = 64
SMALL = ["--size", str(SIZE), "--n-bias", "2", "--n-dark", "1", "--n-flat", "1", "--n-science", "1"]
REQUIRED = ("TELESCOP", "INSTRUME", "OBSERVAT", "SITELAT", "SITELONG", "SITEELEV", "OBSERVER", "IMAGETYP",
            "OBJECT", "EXPTIME", "DATE-OBS", "MJD-OBS", "DATE", "GAIN", "RDNOISE", "BUNIT", "CCD-TEMP")
SCIENCE_REQUIRED = ("FILTER", "AIRMASS", "RA", "DEC", "EQUINOX", "RADESYS", "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2",
                    "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2")


def generate(out, seed=7, extra=()):
    assert cli.main(["make-night", "--night", NIGHT, "--out", str(out), "--seed", str(seed), *SMALL, *extra]) == 0
    return out / NIGHT


@pytest.fixture(scope="module")
def night_dir(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def frames(night_dir):
    """[(name, header, data)] in file-name order."""
    found = []
    for name in sorted(os.listdir(night_dir)):
        if name.endswith(".fits"):
            with fits.open(night_dir / name) as hdul:
                found.append((name, hdul[0].header, hdul[0].data.astype(float)))
    return found


def of_type(frames, kind):
    return [(h, d) for _, h, d in frames if h["IMAGETYP"] == kind]


def manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_counts_per_type_and_names_in_time_order(frames):
    kinds = [h["IMAGETYP"] for _, h, _ in frames]
    # 2 biases, 1 dark at each of 2 times, 1 flat in each of 2 filters, 3 targets x 2 filters x 1
    assert {k: kinds.count(k) for k in set(kinds)} == {"BIAS": 2, "DARK": 2, "FLAT": 2, "OBJECT": 6}
    assert [n for n, _, _ in frames] == [f"DLCAM.{NIGHT}.{i:04d}.fits" for i in range(1, 13)]
    starts = [Time(h["DATE-OBS"]) for _, h, _ in frames]
    assert all(a < b for a, b in zip(starts, starts[1:]))
    # afternoon calibrations, then dusk flats, then science
    assert kinds == ["BIAS"] * 2 + ["DARK"] * 2 + ["FLAT"] * 2 + ["OBJECT"] * 6


def test_manifest_lists_every_frame_with_size_and_hash(night_dir, frames):
    listed = manifest(night_dir)
    assert listed["night"] == NIGHT
    assert [e["name"] for e in listed["files"]] == [n for n, _, _ in frames]
    for entry in listed["files"]:
        assert entry["sha256"] == hashlib.sha256((night_dir / entry["name"]).read_bytes()).hexdigest()
        assert entry["size"] == os.path.getsize(night_dir / entry["name"])


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, night_dir):
    assert manifest(generate(tmp_path / "again")) == manifest(night_dir)
    other = {e["sha256"] for e in manifest(generate(tmp_path / "other", seed=8))["files"]}
    assert other.isdisjoint(e["sha256"] for e in manifest(night_dir)["files"])


def test_headers_are_complete_and_consistent(frames):
    for name, h, data in frames:
        missing = [k for k in REQUIRED if k not in h]
        assert not missing, f"{name} lacks {missing}"
        assert h["BITPIX"] == 16 and h["BZERO"] == 32768 and data.shape == (SIZE, SIZE)
        assert h["INSTRUME"] == "DLCAM" and h["BUNIT"] == "adu" and h["GAIN"] == 1.5 and h["RDNOISE"] == 6.0
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}", h["DATE-OBS"])
        start = Time(h["DATE-OBS"], scale="utc")
        assert h["MJD-OBS"] == pytest.approx(start.mjd, abs=1e-6)
        assert abs(Time(h["DATE"]) - (start + h["EXPTIME"] * u.s)) < 1 * u.ms
    assert {h["EXPTIME"] for h, _ in of_type(frames, "BIAS")} == {0.0}
    assert {h["EXPTIME"] for h, _ in of_type(frames, "DARK")} == set(make_night.DARK_TIMES)
    assert {h["FILTER"] for h, _ in of_type(frames, "FLAT")} == {"V", "R"}
    for h, _ in of_type(frames, "OBJECT"):
        missing = [k for k in SCIENCE_REQUIRED if k not in h]
        assert not missing, f"{h['OBJECT']} lacks {missing}"
        assert h["EXPTIME"] == make_night.SCIENCE_EXPTIME and h["FILTER"] in ("V", "R")
        assert 1.0 <= h["AIRMASS"] < 2.0 and h["RADESYS"] == "ICRS" and h["EQUINOX"] == 2000.0
        assert h["CTYPE1"] == "RA---TAN" and h["CTYPE2"] == "DEC--TAN"


def test_science_wcs_and_pointing_are_on_the_target(frames):
    targets = {name: SkyCoord(ra * u.deg, dec * u.deg) for name, ra, dec in make_night.TARGETS}
    assert {h["OBJECT"] for h, _ in of_type(frames, "OBJECT")} == set(targets)
    for h, _ in of_type(frames, "OBJECT"):
        wcs = WCS(h)
        centre = wcs.pixel_to_world((SIZE - 1) / 2, (SIZE - 1) / 2)
        assert centre.separation(targets[h["OBJECT"]]) < 1 * u.arcmin
        pointing = SkyCoord(h["RA"], h["DEC"], unit=(u.hourangle, u.deg))
        assert pointing.separation(centre) < 1 * u.arcsec
        assert proj_plane_pixel_scales(wcs) * 3600 == pytest.approx([0.6, 0.6])


def test_stars_keep_their_sky_positions(frames):
    """Stars land on the same sky positions in every frame of a target, whatever the pointing
    jitter (a few arcsec): the brightest peaks of the first frame are found again in the second."""
    peaks = {}
    for h, data in of_type(frames, "OBJECT"):
        smooth = median_filter(data, size=3)  # no cosmic rays
        first = h["OBJECT"] not in peaks
        found = find_peaks(smooth, np.median(smooth) + 200, box_size=5, border_width=6 if first else None)
        found.sort("peak_value", reverse=True)
        peaks.setdefault(h["OBJECT"], []).append(WCS(h).pixel_to_world(found["x_peak"], found["y_peak"]))
    for name, (first, second) in peaks.items():
        _, separation, _ = first[:5].match_to_catalog_sky(second)
        assert (separation < 1.5 * u.arcsec).sum() >= 3, (name, separation.arcsec)


def test_times_follow_the_sun():
    counts = argparse.Namespace(**make_night.DEFAULT_COUNTS)
    with make_night.offline_astropy():
        plan, _ = make_night.schedule(datetime.date.fromisoformat(NIGHT), counts)
        sun = [(e, make_night.altitudes(get_sun(e.start), e.start)) for e in plan]
    for exposure, altitude in sun:
        if exposure.kind == "OBJECT":
            assert altitude < -18, exposure
        elif exposure.kind == "FLAT":
            assert -12 < altitude < 0, exposure
        else:
            assert altitude > 10, exposure
    assert len(plan) == 5 + 6 + 6 + 12


def test_detector_signatures(frames):
    bias = np.mean([d.mean() for _, d in of_type(frames, "BIAS")])
    assert bias == pytest.approx(make_night.BIAS_ADU, abs=3)
    darks = sorted(of_type(frames, "DARK"), key=lambda hd: hd[0]["EXPTIME"])
    assert bias < np.median(darks[0][1]) < np.median(darks[1][1])  # dark current grows with time
    assert darks[1][1].max() > bias + 300  # hot pixels (and cosmic rays)
    column = SIZE * 3 // 10
    for _, flat in of_type(frames, "FLAT"):
        assert 20000 < np.median(flat) - bias < 30000
        assert np.median(flat[:, column]) - bias < 0.1 * (np.median(flat) - bias)  # the dead column
    for _, science in of_type(frames, "OBJECT"):
        sky = np.median(science)
        assert sky > bias + 500
        assert np.median(science[:, column]) < bias + 0.2 * (sky - bias)


def test_a_rerun_with_fewer_frames_leaves_no_stale_ones(tmp_path):
    zero = ["--n-dark", "0", "--n-flat", "0", "--n-science", "0", "--size", "32"]
    generate(tmp_path, extra=[*zero, "--n-bias", "3"])
    folder = generate(tmp_path, extra=[*zero, "--n-bias", "1"])
    assert sorted(os.listdir(folder)) == [f"DLCAM.{NIGHT}.0001.fits", "manifest.json"]
    assert len(manifest(folder)["files"]) == 1


def test_help_and_bad_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["make-night", "--help"])
    assert exc.value.code == 0
    assert "DLCAM" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["make-night", "--night", NIGHT, "--out", "x", "--size", "8"])
    assert exc.value.code == 2


def test_bad_night_is_a_step_error(tmp_path, capsys):
    assert cli.main(["make-night", "--night", "2026-13-01", "--out", str(tmp_path)]) == 1
    assert "2026-13-01" in capsys.readouterr().err
