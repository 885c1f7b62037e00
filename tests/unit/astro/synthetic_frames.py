"""Synthetic reduced frames and the database rows that point at them (tests of sources and report)."""
import datetime
import json
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.datasets import make_gaussian_sources_image

SIZE = 128
PIXEL_SCALE = 0.6  # arcsec
FWHM_PIX = 3.0
SKY = 1000.0  # e-/pixel
GAIN, SATURATE = 1.5, 65535  # raw header: e-/ADU, ADU


def star_positions(n, rng, margin=10, min_separation=12):
    """n positions at least min_separation pixels apart, so that no two stars blend."""
    found = []
    while len(found) < n:
        xy = rng.uniform(margin, SIZE - margin, 2)
        if all(np.hypot(*(xy - other)) >= min_separation for other in found):
            found.append(xy)
    return np.array(found)


def reduced_frame(path, n_stars, seed=1, saturated=0):
    """A SIZE x SIZE float32 frame in electrons: n_stars Gaussian stars of FWHM_PIX on a flat sky,
    Poisson noise, and the raw header (GAIN, SATURATE, RDNOISE, a TAN WCS at PIXEL_SCALE). The last
    `saturated` stars are bright and clipped at the saturation level."""
    rng = np.random.default_rng(seed)
    xy = star_positions(n_stars, rng)
    flux = rng.uniform(1e4, 5e4, n_stars)
    flux[n_stars - saturated:] = 5e6
    stars = Table({"flux": flux, "x_mean": xy[:, 0], "y_mean": xy[:, 1],
                   "x_stddev": np.full(n_stars, FWHM_PIX / 2.3548), "y_stddev": np.full(n_stars, FWHM_PIX / 2.3548),
                   "theta": np.zeros(n_stars)})
    data = rng.poisson(make_gaussian_sources_image((SIZE, SIZE), stars) + SKY).astype(np.float32)
    data = np.minimum(data, SATURATE * GAIN)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [10.68, 41.27]
    wcs.wcs.crpix = [SIZE / 2 + 0.5, SIZE / 2 + 0.5]
    wcs.wcs.cd = [[-PIXEL_SCALE / 3600, 0], [0, PIXEL_SCALE / 3600]]
    header = wcs.to_header()
    header.update({"GAIN": GAIN, "RDNOISE": 6.0, "SATURATE": SATURATE, "BUNIT": "electron",
                   "IMAGETYP": "OBJECT", "FILTER": "V", "EXPTIME": 120.0})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return path


def archive_connection():
    """A connection to the test archive database (`make test-unit-astro` starts one: tools/unit-db.sh)."""
    if not os.environ.get("DOWNLINK_ARCHIVE_DSN"):
        pytest.fail("DOWNLINK_ARCHIVE_DSN is not set: run these tests with `make test-unit-astro`, which starts a test database")
    from downlink import db
    return db.connect()


def forget_night(conn, night):
    """Remove a test night's rows (reduced frames, QC and IRAF rows go with their observations)."""
    for table in ("observations", "quarantine", "calibration_masters", "diagnostics"):
        conn.execute(f"DELETE FROM {table} WHERE night = %s", (night,))


def add_frame(conn, root, night, name, start, n_stars, **frame_options):
    """An observation and its reduced frame (written under root); returns reduced_id."""
    raw = f"raw/{night}/{name}"
    reduced = f"reduced/{night}/{name}"
    reduced_frame(os.path.join(root, reduced), n_stars, **frame_options)
    obs_id = conn.execute(
        "INSERT INTO observations (path, filename, night, sha256, size_bytes, imagetyp, object, filter, exptime,"
        " date_obs, airmass, n_ext, header) VALUES (%s, %s, %s, %s, 1, 'object', 'M31', 'V', 120, %s, 1.1, 1, %s)"
        " RETURNING obs_id", (raw, name, night, "0" * 64, start, json.dumps([]))).fetchone()[0]
    return conn.execute(
        "INSERT INTO reduced_frames (obs_id, night, path, sha256, notes, code_version) VALUES"
        " (%s, %s, %s, %s, %s, 'test') RETURNING reduced_id",
        (obs_id, night, reduced, "0" * 64, ["dark from 2026-11-23"])).fetchone()[0]


def start_time(night, hour):
    return datetime.datetime.combine(night, datetime.time(hour), tzinfo=datetime.timezone.utc)
