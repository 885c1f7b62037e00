"""`downlink make-night --night YYYY-MM-DD --out DIR`: a realistic raw night for a fictional camera.

The instrument, DLCAM (the Downlink test camera), on "Downlink 1.0m" at the Roque de los
Muchachos site (28.7606 N, 17.8792 W, 2326 m):
  - square CCD, --size pixels on a side (default 256), 0.6 arcsec/pixel, north up, east left
  - gain 1.5 e-/ADU, read noise 6 e-, bias level 1000 ADU with a faint column pattern
  - dark current 0.05 e-/s/pixel, with hot pixels at 40x that
  - a flat-field response: vignetting (about 6% at the corners) times a 2% pixel-response
    non-uniformity; one bad column (x = size * 3 // 10) at 5% response
  - 16-bit unsigned data (BITPIX 16, BZERO 32768); integrity is the manifest's sha256 (a FITS
    CHECKSUM card carries the time it was written, which would break byte-identical output)
The night (UTC times, the night beginning on --night):
  - afternoon: n-bias biases and n-dark darks of 60 s and of 300 s
  - dusk: n-flat twilight flats in V and in R
  - dark hours: n-science 120 s exposures per filter of M31, NGC 891 and M1, with stars from
    photutils at fixed sky positions per target, sky that varies with airmass and time,
    seeing that varies over the night, Poisson noise, read noise, dark current and cosmic rays.
Headers are standard: IMAGETYP, OBJECT, FILTER, EXPTIME, DATE-OBS, MJD-OBS, GAIN, RDNOISE,
AIRMASS, RA/DEC, EQUINOX, RADESYS, a TAN WCS on science frames, site and instrument keywords.
The output is deterministic: the same arguments give byte-identical files.
"""
import datetime
import os
import warnings
import zlib

import numpy as np
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.utils import iers
from astropy.wcs import WCS
from photutils.datasets import make_gaussian_sources_image

from downlink import layout
from downlink.manifest import write_manifest

INSTRUMENT, TELESCOPE, OBSERVATORY = "DLCAM", "Downlink 1.0m", "ORM"
SITE = {"lat": 28.7606, "lon": -17.8792, "height": 2326.0}
GAIN, READ_NOISE, BIAS_ADU, DARK_E_PER_S = 1.5, 6.0, 1000.0, 0.05
PIXEL_SCALE = 0.6  # arcsec per pixel
TARGETS = (("M31", 10.6847, 41.2690), ("NGC 891", 35.6392, 42.3491), ("M1", 83.6331, 22.0145))
FILTERS = ("V", "R")
SKY_E_PER_S = {"V": 12.0, "R": 20.0}  # dark-sky background per pixel at airmass 1
STAR_FLUX_SCALE = {"V": 1.0, "R": 1.3}
DARK_TIMES = (60.0, 300.0)
SCIENCE_EXPTIME = 120.0
FLAT_LEVEL_ADU = 25000.0


def add_parser(sub):
    p = sub.add_parser("make-night", help="generate a realistic sample night (fictional DLCAM camera)",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--night", required=True, help="night (YYYY-MM-DD) the files belong to")
    p.add_argument("--out", required=True, help="archive folder; the night goes to OUT/<night>/")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--size", type=int, default=256, help="frame side in pixels (default 256)")
    p.add_argument("--n-bias", type=int, default=5)
    p.add_argument("--n-dark", type=int, default=3, help="darks per exposure time (60 s and 300 s)")
    p.add_argument("--n-flat", type=int, default=3, help="twilight flats per filter (V and R)")
    p.add_argument("--n-science", type=int, default=2, help="exposures per target per filter")
    return p


class Camera:
    """The detector's fixed properties for one night: the same in every frame."""

    def __init__(self, size, seed):
        rng = np.random.default_rng(seed)
        self.size = size
        y, x = np.mgrid[0:size, 0:size]
        r2 = ((x - size / 2) ** 2 + (y - size / 2) ** 2) / (size / 2) ** 2
        vignetting = 1.0 - 0.03 * r2
        prnu = 1.0 + 0.02 * rng.standard_normal((size, size))
        self.response = {f: vignetting * prnu * (1.0 + (0.01 * np.sin(x / size * np.pi) if f == "R" else 0.0))
                         for f in FILTERS}
        self.bad_column = size * 3 // 10
        for f in FILTERS:
            self.response[f][:, self.bad_column] *= 0.05
        self.bias_pattern = BIAS_ADU + 1.5 * np.sin(np.arange(size) / 7.0)[None, :] * np.ones((size, 1))
        self.dark_rate = np.full((size, size), DARK_E_PER_S)
        hot = rng.choice(size * size, size=max(3, size * size // 4000), replace=False)
        self.dark_rate.flat[hot] *= 40.0


def frame_rng(seed, index):
    return np.random.default_rng([seed, index])


def to_adu(camera, electrons, rng):
    """Electrons on the chip -> read-out ADU (bias pattern, read noise, 16-bit range)."""
    adu = camera.bias_pattern + electrons / GAIN + rng.normal(0.0, READ_NOISE / GAIN, electrons.shape)
    return np.clip(np.round(adu), 0, 65535).astype(np.uint16)


def dark_electrons(camera, exptime, rng):
    return rng.poisson(camera.dark_rate * exptime).astype(float)


def star_table(target, filt, camera_size, rng_seed):
    """Fixed stars around a target (offsets in arcsec from it), fluxes per filter."""
    rng = np.random.default_rng(zlib.crc32(target.encode()) + rng_seed)
    n = int(rng.integers(30, 80))
    half = camera_size * PIXEL_SCALE / 2 * 0.95
    return {
        "dx": rng.uniform(-half, half, n), "dy": rng.uniform(-half, half, n),
        "flux": 10 ** rng.uniform(3.3, 5.3, n) * STAR_FLUX_SCALE[filt],
    }


def cosmic_rays(shape, rng, count):
    image = np.zeros(shape)
    for _ in range(count):
        y, x = rng.integers(1, shape[0] - 2), rng.integers(1, shape[1] - 2)
        energy = rng.uniform(800, 6000)
        image[y, x] += energy
        if rng.random() < 0.5:  # a short track
            image[y + rng.integers(-1, 2), x + 1] += energy * 0.6
    return image


def site():
    return EarthLocation(lat=SITE["lat"] * u.deg, lon=SITE["lon"] * u.deg, height=SITE["height"] * u.m)


def airmass(ra, dec, when):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        altaz = SkyCoord(ra * u.deg, dec * u.deg).transform_to(AltAz(obstime=when, location=site()))
        return float(altaz.secz)


def science_wcs(size, ra, dec, jitter):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [size / 2 + 0.5 + jitter[0], size / 2 + 0.5 + jitter[1]]
    wcs.wcs.cd = np.array([[-PIXEL_SCALE / 3600.0, 0.0], [0.0, PIXEL_SCALE / 3600.0]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    return wcs


def sexagesimal(ra, dec):
    coord = SkyCoord(ra * u.deg, dec * u.deg)
    return coord.ra.to_string(unit=u.hourangle, sep=":", precision=2, pad=True), \
        coord.dec.to_string(sep=":", precision=1, alwayssign=True, pad=True)


def base_header(kind, obj, filt, exptime, start):
    h = fits.Header()
    h["TELESCOP"] = (TELESCOPE, "fictional telescope")
    h["INSTRUME"] = (INSTRUMENT, "Downlink test camera")
    h["OBSERVAT"] = OBSERVATORY
    h["SITELAT"], h["SITELONG"], h["SITEELEV"] = SITE["lat"], SITE["lon"], SITE["height"]
    h["OBSERVER"] = "Downlink sample generator"
    h["IMAGETYP"] = (kind, "BIAS, DARK, FLAT or OBJECT")
    h["OBJECT"] = obj
    if filt:
        h["FILTER"] = filt
    h["EXPTIME"] = (exptime, "[s] exposure time")
    h["DATE-OBS"] = (start.isot, "UTC start of exposure")
    h["MJD-OBS"] = (round(start.mjd, 8), "MJD (UTC) start of exposure")
    h["DATE"] = ((start + exptime * u.s).isot, "UTC time the file was written")
    h["GAIN"] = (GAIN, "[e-/ADU] detector gain")
    h["RDNOISE"] = (READ_NOISE, "[e-] read noise")
    h["CCD-TEMP"] = (-100.0, "[C] detector temperature")
    h["BUNIT"] = "adu"
    h["COMMENT"] = "Generated by downlink make-night: synthetic data, fictional instrument."
    return h


def write_frame(path, data, header):
    """Atomically: the archive server may be reading the folder."""
    tmp = path + ".tmp"
    fits.PrimaryHDU(data=data, header=header).writeto(tmp, overwrite=True)
    os.replace(tmp, path)


def schedule(night, args):
    """[(kind, object, filter, exptime, start Time)] for the whole night, in time order."""
    day = datetime.datetime.combine(night, datetime.time(), datetime.timezone.utc)
    at = lambda hours: Time(day + datetime.timedelta(hours=hours))  # noqa: E731
    plan = [("BIAS", "bias", None, 0.0, at(14.0 + i * 0.02)) for i in range(args.n_bias)]
    plan += [("DARK", "dark", None, t, at(14.5 + j * 0.5 + i * 0.1)) for j, t in enumerate(DARK_TIMES) for i in range(args.n_dark)]
    plan += [("FLAT", "flat", f, 10.0, at(18.3 + j * 0.2 + i * 0.04)) for j, f in enumerate(FILTERS) for i in range(args.n_flat)]
    starts = {"M31": 20.0, "NGC 891": 22.0, "M1": 24.5}  # near each target's transit
    for name, _, _ in TARGETS:
        for j, f in enumerate(FILTERS):
            for i in range(args.n_science):
                plan.append(("OBJECT", name, f, SCIENCE_EXPTIME, at(starts[name] + (j * args.n_science + i) * 0.05)))
    return sorted(plan, key=lambda p: p[4].mjd)


def seeing_fwhm(start, night_start):
    """Seeing in pixels, drifting smoothly over the night."""
    hours = (start - night_start).to_value(u.hour)
    return 2.0 + 0.75 * (1 + np.sin(hours / 2.5))


def make_frame(camera, kind, obj, filt, exptime, start, rng, night_start, seed):
    header = base_header(kind, obj, filt, exptime, start)
    shape = (camera.size, camera.size)
    electrons = dark_electrons(camera, exptime, rng) if exptime else np.zeros(shape)
    if kind == "FLAT":
        level = FLAT_LEVEL_ADU * GAIN * (1.0 + 0.1 * rng.standard_normal())
        electrons += rng.poisson(np.clip(level * camera.response[filt], 0, None))
    elif kind == "OBJECT":
        ra0, dec0 = next((ra, dec) for name, ra, dec in TARGETS if name == obj)
        x_air = airmass(ra0, dec0, start)
        jitter = rng.normal(0.0, 1.5, 2)
        wcs = science_wcs(camera.size, ra0, dec0, jitter)
        stars = star_table(obj, filt, camera.size, seed)
        coords = SkyCoord(ra0 * u.deg, dec0 * u.deg).spherical_offsets_by(
            -stars["dx"] * u.arcsec, stars["dy"] * u.arcsec)
        x, y = wcs.world_to_pixel(coords)
        sigma = seeing_fwhm(start, night_start) * x_air ** 0.6 / 2.3548
        table = Table({"flux": stars["flux"] * exptime / 100.0 * 10 ** (-0.08 * (x_air - 1)),
                       "x_mean": x, "y_mean": y, "x_stddev": np.full(len(x), sigma),
                       "y_stddev": np.full(len(x), sigma), "theta": np.zeros(len(x))})
        sky = SKY_E_PER_S[filt] * exptime * (1 + 0.25 * (x_air - 1))
        light = (make_gaussian_sources_image(shape, table) + sky) * camera.response[filt]
        electrons += rng.poisson(np.clip(light, 0, None)) + cosmic_rays(shape, rng, int(exptime / 4))
        header["AIRMASS"] = (round(x_air, 4), "airmass at start of exposure")
        header["RA"], header["DEC"] = sexagesimal(ra0, dec0)
        header["EQUINOX"], header["RADESYS"] = 2000.0, "ICRS"
        header.update(wcs.to_header())
    return to_adu(camera, electrons, rng), header


def make_night(night, out, seed=42, size=256, args=None):
    """Write the night's files into out/<night>/ with a manifest; returns the manifest."""
    # Offline: no IERS download; arcsecond-level precision in airmass is more than enough here.
    iers.conf.auto_download = False
    iers.conf.iers_degraded_accuracy = "ignore"
    folder = os.path.join(out, str(night))
    os.makedirs(folder, exist_ok=True)
    camera = Camera(size, seed)
    plan = schedule(night, args)
    night_start = plan[0][4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", iers.IERSStaleWarning)
        for index, (kind, obj, filt, exptime, start) in enumerate(plan, start=1):
            data, header = make_frame(camera, kind, obj, filt, exptime, start, frame_rng(seed, index), night_start, seed)
            write_frame(os.path.join(folder, f"{INSTRUMENT}.{night}.{index:04d}.fits"), data, header)
    return write_manifest(folder)


def run(args):
    night = layout.parse_night(args.night)
    manifest = make_night(night, args.out, args.seed, args.size, args)
    total = sum(f["size"] for f in manifest["files"])
    print(f"night {night}: {len(manifest['files'])} files ({total / 1e6:.1f} MB) in {os.path.join(args.out, str(night))}")
    return 0
