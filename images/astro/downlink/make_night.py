"""`downlink make-night --night YYYY-MM-DD --out DIR`: a realistic raw night for a fictional camera.

The instrument, DLCAM (the Downlink test camera), on the fictional "Downlink 1.0m" telescope at
the Roque de los Muchachos site on La Palma (ORM: 28.7606 N, 17.8792 W, 2326 m), chosen because
the three targets (Dec +22 to +42) pass high overhead there:
  - square CCD, --size pixels on a side (default 256), 0.6 arcsec/pixel, north up, east left
  - gain 1.5 e-/ADU, read noise 6 e-, bias level 1000 ADU with a faint column pattern
  - dark current 0.05 e-/s/pixel, with a few hot pixels (1 per 4000) at 40 times that
  - a flat-field response: vignetting (about 6% at the corners) times a fixed 2% pixel-response
    non-uniformity; one bad (dead) column at x = size * 3 // 10 (0-based) with 5% response
  - cosmic rays: about 0.25 hits per second per 256x256 pixels, in every exposure
  - 16-bit unsigned data (BITPIX 16, BZERO 32768); integrity is the manifest's sha256 (a FITS
    CHECKSUM card carries the time it was written, which would break byte-identical output)
The night (UTC; times from the Sun's and the targets' positions, computed with astropy offline):
  - afternoon, from 3.5 h before sunset: n-bias biases, then n-dark darks of 60 s and of 300 s
  - dusk, from when the Sun is 4 deg below the horizon: n-flat twilight flats in V and in R
    (20000-30000 ADU, exposure times growing as the sky fades)
  - dark hours (Sun below -18 deg): n-science 120 s exposures per filter of M31, NGC 891 and M1,
    each target's block centred on its highest point (targets below 30 deg are skipped); stars
    from photutils at fixed sky positions per target (30-80 per field), a few arcsec of pointing
    jitter, zenith seeing drifting between 2.0 and 3.5 pixels over the night (worse with
    airmass), atmospheric extinction, sky brighter early in the night and at high airmass,
    Poisson and read noise, dark current, cosmic rays.
Headers are standard: IMAGETYP (BIAS, DARK, FLAT, OBJECT), OBJECT, FILTER (flats and science only),
EXPTIME, DATE-OBS (start, UTC), MJD-OBS, DATE (end of exposure: no wall-clock time, so the output
is deterministic), GAIN, RDNOISE, site and instrument keywords; science frames also have AIRMASS,
RA/DEC (pointing, sexagesimal), EQUINOX, RADESYS and a TAN WCS in CDi_j form.
Files are DLCAM.<night>.<seq>.fits, numbered in time order, then OUT/<night>/manifest.json.
The same arguments give byte-identical files.
"""
import argparse
import collections
import contextlib
import datetime
import os
import re
import warnings
import zlib

import numpy as np
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_sun
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.utils import iers
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from photutils.datasets import make_gaussian_sources_image

from downlink import StepError, layout
from downlink.manifest import write_manifest
from downlink.outputs import atomic_path

INSTRUMENT, TELESCOPE, OBSERVATORY = "DLCAM", "Downlink 1.0m", "ORM"
SITE = {"lat": 28.7606, "lon": -17.8792, "height": 2326.0}
GAIN, READ_NOISE, BIAS_ADU, DARK_E_PER_S = 1.5, 6.0, 1000.0, 0.05
PIXEL_SCALE = 0.6  # arcsec per pixel
CCD_TEMP = -100.0  # deg C
TARGETS = (("M31", 10.6847, 41.2690), ("NGC 891", 35.6392, 42.3491), ("M1", 83.6331, 22.0145))
FILTERS = ("V", "R")
SKY_E_PER_S = {"V": 12.0, "R": 20.0}  # dark-sky background per pixel at the zenith
STAR_FLUX_SCALE = {"V": 1.0, "R": 1.3}
EXTINCTION_MAG = {"V": 0.13, "R": 0.09}  # per airmass, typical of La Palma
DARK_TIMES = (60.0, 300.0)
SCIENCE_EXPTIME = 120.0
READOUT_S = 14.0  # from the end of one exposure to the start of the next
FLAT_LEVELS_ADU = (21000.0, 29000.0)
COSMIC_RATE = 0.25 / 256 ** 2  # hits per second per pixel
POINTING_JITTER_ARCSEC = 3.0
CALIBRATION_LEAD = 3.5 * u.hour  # biases start this long before sunset
SUNSET_ALT, FLAT_SUN_ALT, DARK_SUN_ALT = -0.833, -4.0, -18.0  # deg
MIN_ALTITUDE = 30.0  # deg: targets are observed above this (airmass below 2)
GRID_STEP = 2 * u.min  # resolution of the Sun and target altitude calculations
DEFAULT_COUNTS = {"n_bias": 5, "n_dark": 3, "n_flat": 3, "n_science": 2}
MIN_SIZE = 32

Exposure = collections.namedtuple("Exposure", "kind object filter exptime start")


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def frame_size(text):
    value = int(text)
    if value < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"{text} is smaller than {MIN_SIZE} pixels")
    return value


def add_parser(sub):
    p = sub.add_parser("make-night", help="generate a realistic sample night (fictional DLCAM camera)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--night", required=True, help="night (YYYY-MM-DD, the date it begins) to generate")
    p.add_argument("--out", required=True, help="archive folder; the night goes to OUT/<night>/")
    p.add_argument("--seed", type=non_negative, default=42, help="random seed (default 42)")
    p.add_argument("--size", type=frame_size, default=256, help="frame side in pixels (default 256)")
    p.add_argument("--n-bias", type=non_negative, default=DEFAULT_COUNTS["n_bias"], help="biases (default 5)")
    p.add_argument("--n-dark", type=non_negative, default=DEFAULT_COUNTS["n_dark"],
                   help="darks per exposure time, 60 s and 300 s (default 3)")
    p.add_argument("--n-flat", type=non_negative, default=DEFAULT_COUNTS["n_flat"],
                   help="twilight flats per filter, V and R (default 3)")
    p.add_argument("--n-science", type=non_negative, default=DEFAULT_COUNTS["n_science"],
                   help="exposures per target per filter (default 2)")
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


# --- the night's timeline ---------------------------------------------------------------------

@contextlib.contextmanager
def offline_astropy():
    """No IERS download (steps may run without network). Past the bundled tables astropy uses
    its last values: arcsecond-level errors, far below what airmass or twilight times need."""
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("iers_degraded_accuracy", "ignore"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        yield


def site():
    return EarthLocation(lat=SITE["lat"] * u.deg, lon=SITE["lon"] * u.deg, height=SITE["height"] * u.m)


def altitudes(coord, times):
    return coord.transform_to(AltAz(obstime=times, location=site())).alt.deg


def night_grid(night):
    """Times every GRID_STEP from local noon on the night's date to local noon the next day."""
    day = Time(datetime.datetime.combine(night, datetime.time(12), datetime.timezone.utc))
    noon = day + round(-SITE["lon"] / 15.0 * 60) * u.min
    steps = int((24 * u.hour / GRID_STEP).to_value(u.dimensionless_unscaled))
    return noon + np.arange(steps) * GRID_STEP


def in_sequence(start, frames):
    """[(kind, object, filter, exptime)] -> Exposures back to back from start."""
    exposures, at = [], start
    for kind, obj, filt, exptime in frames:
        exposures.append(Exposure(kind, obj, filt, exptime, at))
        at = at + (exptime + READOUT_S) * u.s
    return exposures


def flat_exptime(index):
    """Twilight fades: each flat is exposed a little longer than the one before."""
    return round(3.0 * 1.3 ** index, 1)


def science_blocks(grid, dark, counts):
    """Each target's exposures, in the order the targets culminate, centred on that moment when
    the previous block allows. A target that would be below MIN_ALTITUDE or outside the dark
    hours (on another --night than the sample's, say) is left out, as an observer would."""
    duration = len(FILTERS) * counts.n_science * (SCIENCE_EXPTIME + READOUT_S) * u.s
    coords = {name: SkyCoord(ra * u.deg, dec * u.deg) for name, ra, dec in TARGETS}
    best = {name: grid[dark][np.argmax(altitudes(coord, grid[dark]))] for name, coord in coords.items()}
    exposures, free_from, last_start = [], grid[dark][0], grid[dark][-1] - duration
    for name in sorted(best, key=lambda n: best[n].mjd):
        start = min(max(best[name] - duration / 2, free_from), last_start)
        block = start + [0.0, 1.0] * duration
        if start < free_from or altitudes(coords[name], block).min() < MIN_ALTITUDE:
            continue
        exposures += in_sequence(start, [("OBJECT", name, f, SCIENCE_EXPTIME)
                                         for f in FILTERS for _ in range(counts.n_science)])
        free_from = block[1]
    return exposures


def schedule(night, counts):
    """(the night's Exposures in time order, the start of astronomical darkness)."""
    grid = night_grid(night)
    sun = altitudes(get_sun(grid), grid)
    sunset = grid[np.argmax(sun < SUNSET_ALT)]
    dark = sun < DARK_SUN_ALT
    calibrations = [("BIAS", "bias", None, 0.0)] * counts.n_bias
    calibrations += [("DARK", "dark", None, t) for t in DARK_TIMES for _ in range(counts.n_dark)]
    flat_filters = [f for f in FILTERS for _ in range(counts.n_flat)]
    flats = [("FLAT", "flat", f, flat_exptime(i)) for i, f in enumerate(flat_filters)]
    plan = in_sequence(sunset - CALIBRATION_LEAD, calibrations)
    plan += in_sequence(grid[np.argmax(sun < FLAT_SUN_ALT)], flats)
    plan += science_blocks(grid, dark, counts)
    return sorted(plan, key=lambda e: e.start.mjd), grid[dark][0]


# --- what falls on the detector ---------------------------------------------------------------

def seeing_fwhm(start, dark_start):
    """Zenith seeing in pixels, drifting smoothly between 2.0 and 3.5 over the night."""
    hours = (start - dark_start).to_value(u.hour)
    return 2.75 - 0.75 * np.cos(2 * np.pi * hours / 9.0)


def sky_e_per_s(filt, airmass, start, dark_start):
    """Airglow fades over the first hours of the night and grows towards the horizon."""
    hours = max((start - dark_start).to_value(u.hour), 0.0)
    return SKY_E_PER_S[filt] * (1 + 0.25 * (airmass - 1)) * (1 + 0.3 * np.exp(-hours / 2.0))


def star_field(target, ra, dec, filt, size, seed):
    """The target's fixed stars (the same in every frame of it): SkyCoords and e-/s above the
    atmosphere, with more faint stars than bright ones (dN/dm ~ 10^(0.3 m) over 5 magnitudes)."""
    rng = np.random.default_rng(zlib.crc32(target.encode()) + seed)
    n = int(rng.integers(30, 81))
    half = size * PIXEL_SCALE / 2
    dx, dy = rng.uniform(-half, half, n), rng.uniform(-half, half, n)
    mag = np.log10(1 + rng.uniform(0, 1, n) * (10 ** 1.5 - 1)) / 0.3
    coords = SkyCoord(ra * u.deg, dec * u.deg).spherical_offsets_by(-dx * u.arcsec, dy * u.arcsec)
    return coords, 2000.0 * 10 ** (-0.4 * mag) * STAR_FLUX_SCALE[filt]


def cosmic_rays(shape, exptime, rng):
    """Sharp hits of 800-6000 e-, half of them short two-pixel tracks."""
    image = np.zeros(shape)
    n = rng.poisson(COSMIC_RATE * shape[0] * shape[1] * exptime)
    y, x = rng.integers(1, shape[0] - 2, n), rng.integers(1, shape[1] - 2, n)
    energy = rng.uniform(800, 6000, n)
    np.add.at(image, (y, x), energy)
    track = rng.random(n) < 0.5
    np.add.at(image, (y[track] + rng.integers(-1, 2, track.sum()), x[track] + 1), 0.6 * energy[track])
    return image


def science_wcs(size, pointing):
    """A TAN WCS, north up and east left, with the pointing at the frame centre."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [pointing.ra.deg, pointing.dec.deg]
    wcs.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    wcs.wcs.cd = np.array([[-PIXEL_SCALE / 3600.0, 0.0], [0.0, PIXEL_SCALE / 3600.0]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    return wcs


def wcs_cards(wcs):
    """astropy writes PCi_j with CDELTi; archive tools commonly expect CDi_j, so convert. MJDREF
    (the fiducial time of a time axis) means nothing for a celestial-only WCS."""
    header = wcs.to_header()
    for key in ("MJDREF", "CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        header.remove(key, ignore_missing=True)
    for i in (1, 2):
        for j in (1, 2):
            header.insert("CUNIT1", (f"CD{i}_{j}", wcs.wcs.cd[i - 1][j - 1], "[deg/pix] linear transformation matrix"))
    return header


def sexagesimal(coord):
    return (coord.ra.to_string(unit=u.hourangle, sep=":", precision=2, pad=True),
            coord.dec.to_string(sep=":", precision=1, alwayssign=True, pad=True))


def base_header(exposure, size, seed):
    kind, obj, filt, exptime, start = exposure
    h = fits.Header()
    h["TELESCOP"] = (TELESCOPE, "fictional 1.0-m telescope")
    h["INSTRUME"] = (INSTRUMENT, "Downlink test camera (fictional)")
    h["OBSERVAT"] = (OBSERVATORY, "Roque de los Muchachos, La Palma")
    h["SITELAT"] = (SITE["lat"], "[deg] site latitude, north positive")
    h["SITELONG"] = (SITE["lon"], "[deg] site longitude, east positive")
    h["SITEELEV"] = (SITE["height"], "[m] site elevation")
    h["OBSERVER"] = "Downlink sample generator"
    h["IMAGETYP"] = (kind, "BIAS, DARK, FLAT or OBJECT")
    h["OBJECT"] = (obj, "target name")
    if filt:
        h["FILTER"] = (filt, "filter name")
    h["EXPTIME"] = (exptime, "[s] exposure time")
    h["DATE-OBS"] = (start.isot, "UTC start of exposure")
    h["MJD-OBS"] = (round(start.mjd, 8), "[d] MJD (UTC) start of exposure")
    h["DATE"] = ((start + exptime * u.s).isot, "UTC time the file was written")
    h["GAIN"] = (GAIN, "[e-/ADU] detector gain")
    h["RDNOISE"] = (READ_NOISE, "[e-] read noise")
    h["SATURATE"] = (65535, "[adu] saturation level")
    h["PIXSCALE"] = (PIXEL_SCALE, "[arcsec/pix] pixel scale")
    h["XBINNING"], h["YBINNING"] = 1, 1
    h["CCD-TEMP"] = (CCD_TEMP, "[C] detector temperature")
    h["BUNIT"] = ("adu", "pixel values are raw counts")
    h["COMMENT"] = "Synthetic frame from downlink make-night (seed {}): not real data.".format(seed)
    h["COMMENT"] = "DLCAM is fictional: {0}x{0} CCD, 0.6 arcsec/pix, gain 1.5 e-/ADU,".format(size)
    h["COMMENT"] = "read noise 6 e-, bias ~1000 ADU, a few hot pixels and one dead"
    h["COMMENT"] = "column at x = {} (0-based).".format(size * 3 // 10)
    return h


def science_electrons(camera, exposure, rng, seed, dark_start, header):
    """Stars and sky through the atmosphere and the optics, in e- per pixel; fills the header's
    pointing, airmass and WCS."""
    _, obj, filt, exptime, start = exposure
    ra, dec = next((ra, dec) for name, ra, dec in TARGETS if name == obj)
    target = SkyCoord(ra * u.deg, dec * u.deg)
    airmass = float(target.transform_to(AltAz(obstime=start, location=site())).secz)
    jitter = rng.normal(0.0, POINTING_JITTER_ARCSEC, 2) * u.arcsec
    pointing = target.spherical_offsets_by(jitter[0], jitter[1])
    wcs = science_wcs(camera.size, pointing)
    coords, e_per_s = star_field(obj, ra, dec, filt, camera.size, seed)
    x, y = wcs.world_to_pixel(coords)
    sigma = seeing_fwhm(start, dark_start) * airmass ** 0.6 / 2.3548
    transmission = 10 ** (-0.4 * EXTINCTION_MAG[filt] * airmass)
    stars = Table({"flux": e_per_s * exptime * transmission, "x_mean": x, "y_mean": y,
                   "x_stddev": np.full(len(x), sigma), "y_stddev": np.full(len(x), sigma), "theta": np.zeros(len(x))})
    shape = (camera.size, camera.size)
    sky = sky_e_per_s(filt, airmass, start, dark_start) * exptime
    light = (make_gaussian_sources_image(shape, stars) + sky) * camera.response[filt]
    header["AIRMASS"] = (round(airmass, 4), "airmass at start of exposure")
    ra_text, dec_text = sexagesimal(pointing)
    header["RA"] = (ra_text, "[h:m:s] telescope pointing (ICRS)")
    header["DEC"] = (dec_text, "[d:m:s] telescope pointing (ICRS)")
    header["EQUINOX"], header["RADESYS"] = (2000.0, "equinox of RA/DEC"), ("ICRS", "reference frame of RA/DEC")
    header.update(wcs_cards(wcs))
    return rng.poisson(np.clip(light, 0, None)).astype(float)


def to_adu(camera, electrons, rng):
    """Electrons on the chip -> read-out ADU (bias pattern, read noise, 16-bit range)."""
    adu = camera.bias_pattern + electrons / GAIN + rng.normal(0.0, READ_NOISE / GAIN, electrons.shape)
    return np.clip(np.round(adu), 0, 65535).astype(np.uint16)


def make_frame(camera, exposure, rng, seed, dark_start):
    header = base_header(exposure, camera.size, seed)
    shape = (camera.size, camera.size)
    electrons = np.zeros(shape)
    if exposure.exptime:
        electrons += rng.poisson(camera.dark_rate * exposure.exptime) + cosmic_rays(shape, exposure.exptime, rng)
    if exposure.kind == "FLAT":
        level = rng.uniform(*FLAT_LEVELS_ADU) * GAIN
        electrons += rng.poisson(level * camera.response[exposure.filter])
    elif exposure.kind == "OBJECT":
        electrons += science_electrons(camera, exposure, rng, seed, dark_start, header)
    return to_adu(camera, electrons, rng), header


# --- files --------------------------------------------------------------------------------------

def frame_name(night, index):
    return f"{INSTRUMENT}.{night}.{index:04d}.fits"


def write_frame(path, data, header):
    """Atomically, through a dotfile (which manifests skip): the archive server may be reading."""
    with atomic_path(path) as tmp:
        fits.PrimaryHDU(data=data, header=header).writeto(tmp, overwrite=True)


def remove_stale_frames(folder, night, count):
    """Frames of an earlier, longer run with other counts would otherwise join this night."""
    pattern = re.compile(rf"^{re.escape(INSTRUMENT)}\.{night}\.(\d{{4}})\.fits$")
    for name in layout.files_in(folder):
        m = pattern.match(name)
        if m and int(m.group(1)) > count:
            os.remove(os.path.join(folder, name))


def make_night(night, out, seed=42, size=256, args=None):
    """Write the night's files into out/<night>/ with a manifest; returns the manifest.
    args: the frame counts (n_bias, n_dark, n_flat, n_science), as parsed by add_parser."""
    counts = args or argparse.Namespace(**DEFAULT_COUNTS)
    folder = os.path.join(out, str(night))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise StepError(f"{folder}: cannot create the night's folder: {exc.strerror}") from exc
    camera = Camera(size, seed)
    with offline_astropy():
        plan, dark_start = schedule(night, counts)
        for index, exposure in enumerate(plan, start=1):
            data, header = make_frame(camera, exposure, np.random.default_rng([seed, index]), seed, dark_start)
            write_frame(os.path.join(folder, frame_name(night, index)), data, header)
    remove_stale_frames(folder, night, len(plan))
    return write_manifest(folder)


def run(args):
    night = layout.parse_night(args.night)
    manifest = make_night(night, args.out, args.seed, args.size, args)
    total = sum(f["size"] for f in manifest["files"])
    print(f"night {night}: {len(manifest['files'])} files ({total / 1e6:.1f} MB) in {os.path.join(args.out, str(night))}")
    return 0
