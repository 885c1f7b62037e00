"""`downlink sources --night YYYY-MM-DD`: SExtractor on every reduced frame, and per-frame QC.

Every reduced frame of the night (the reduced_frames rows) goes through SExtractor
(source-extractor) twice, with a configuration written here: the first pass measures the seeing,
which the second pass needs for its star/galaxy classifier (CLASS_STAR). The second pass's
catalogue is kept, replaced atomically, as catalogs/<night>/<stem>.cat in FITS_LDAC form: the
sources in the LDAC_OBJECTS table, the frame's header and SExtractor's settings (its global
background SEXBKGND among them) in LDAC_IMHEAD.
Reduced frames are in electrons, so GAIN is 1. Saturation is the raw header's SATURATE (ADU) times
its GAIN, less 10% (bias removal and flat-fielding move it by a few per cent); without SATURATE,
no source is flagged as saturated.

QC numbers per frame, stored in frame_qc (one row per reduced frame):
  n_sources    detections above 3 sigma over at least 5 pixels
  fwhm_pix     median FWHM_IMAGE of the unflagged (FLAGS 0: not saturated, blended or cut by the
               edge), star-like (CLASS_STAR >= 0.5) sources
  fwhm_arcsec  fwhm_pix times the pixel scale of the frame's celestial WCS
  sky          SExtractor's global background (median of its background map), e-/pixel
A frame passes QC (qc_ok) only when every check could be made and is within these limits; otherwise
qc_reasons says what failed. Each limit can be overridden from the environment:
  DOWNLINK_QC_MIN_SOURCES      at least this many sources                 (default 5)
  DOWNLINK_QC_MAX_FWHM_ARCSEC  seeing FWHM at most this, arcsec           (default 3.0)
  DOWNLINK_QC_MAX_SKY          sky background at most this, e-/pixel      (default 10000)
A frame without star-like sources or without a celestial WCS fails QC: its seeing cannot be checked.
Exit codes: 0 done (frames may fail QC: that is data, not a step failure); 1 failure; 2 bad usage.
"""
import argparse
import os
import subprocess
import tempfile
import warnings

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from downlink import StepError, db, layout, runinfo, settings
from downlink.calibrate import stem
from downlink.outputs import atomic_path

SEX = "source-extractor"
SEX_SHARE = "/usr/share/source-extractor"
DETECTION_FILTER = "gauss_2.5_5x5.conv"  # a Gaussian of 2.5 pixels FWHM: about 1.5" here
PARAMS = ("NUMBER", "X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "FWHM_IMAGE", "FLAGS", "CLASS_STAR", "ELONGATION",
          "BACKGROUND")
NO_SUCH_KEYWORD = "DL_NOKEY"  # makes SExtractor ignore the raw header's GAIN and SATURATE (both in ADU)
SEEING_GUESS_ARCSEC = 1.5  # for the first pass only
SATURATION_MARGIN = 0.9
UNKNOWN_SATURATION = 1e20  # "never saturates"; SExtractor refuses 1e30 and above
STAR_CLASS = 0.5



def add_parser(sub):
    p = sub.add_parser("sources", help="SExtractor on reduced frames, with per-frame QC",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--night", required=True, help="YYYY-MM-DD")
    lim = limits()
    p.add_argument("--min-sources", type=int, default=lim["min_sources"],
                   help="QC: at least this many sources (default: $DOWNLINK_QC_MIN_SOURCES or %(default)s)")
    p.add_argument("--max-fwhm-arcsec", type=float, default=lim["max_fwhm_arcsec"],
                   help="QC: seeing FWHM at most this, arcsec (default: $DOWNLINK_QC_MAX_FWHM_ARCSEC or %(default)s)")
    p.add_argument("--max-sky", type=float, default=lim["max_sky"],
                   help="QC: sky background at most this, e-/pixel (default: $DOWNLINK_QC_MAX_SKY or %(default)s)")
    return p


def limits(env=None):
    """The QC limits (downlink.settings: its defaults, or the environment's values where set)."""
    env = {k: v.strip() for k, v in (os.environ if env is None else env).items()}
    return {"min_sources": settings.get("qc_min_sources", env), "max_fwhm_arcsec": settings.get("qc_max_fwhm_arcsec", env),
            "max_sky": settings.get("qc_max_sky", env)}


def pixel_scale_arcsec(header):
    """Mean pixel scale of the header's celestial WCS in arcsec, or None without one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    if not wcs.has_celestial:
        return None
    return float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)


def saturation_electrons(header):
    """Saturation level of a frame in electrons, from the raw SATURATE (ADU) and GAIN; None if unknown."""
    try:
        return float(header["SATURATE"]) * float(header["GAIN"]) * SATURATION_MARGIN
    except (KeyError, TypeError, ValueError):
        return None


def sextractor_settings(catalog, params, seeing_arcsec, header):
    """The configuration of one SExtractor pass, as {keyword: value}."""
    scale = pixel_scale_arcsec(header)
    saturation = saturation_electrons(header)
    conv = os.path.join(SEX_SHARE, DETECTION_FILTER)
    return {
        "CATALOG_NAME": catalog, "CATALOG_TYPE": "FITS_LDAC", "PARAMETERS_NAME": params,
        "DETECT_TYPE": "CCD", "DETECT_MINAREA": 5, "DETECT_THRESH": 3.0, "ANALYSIS_THRESH": 3.0,
        "FILTER": "Y" if os.path.exists(conv) else "N", "FILTER_NAME": conv,
        "DEBLEND_NTHRESH": 32, "DEBLEND_MINCONT": 0.005, "CLEAN": "Y", "CLEAN_PARAM": 1.0,
        "GAIN": 1.0, "GAIN_KEY": NO_SUCH_KEYWORD,
        "SATUR_LEVEL": saturation or UNKNOWN_SATURATION, "SATUR_KEY": NO_SUCH_KEYWORD,
        # Without a WCS, SExtractor would take 1 degree per pixel: work in pixels instead.
        "PIXEL_SCALE": 0 if scale else 1.0, "SEEING_FWHM": round(seeing_arcsec, 3),
        "STARNNW_NAME": os.path.join(SEX_SHARE, "default.nnw"),
        "BACK_TYPE": "AUTO", "BACK_SIZE": 64, "BACK_FILTERSIZE": 3, "BACKPHOTO_TYPE": "GLOBAL",
        "CHECKIMAGE_TYPE": "NONE", "WRITE_XML": "N", "VERBOSE_TYPE": "QUIET", "NTHREADS": 1,
    }


def run_sextractor(image, settings, folder):
    """One SExtractor pass over image with the given settings; config files go into folder."""
    config = os.path.join(folder, "downlink.sex")
    with open(config, "w") as fh:
        fh.writelines(f"{key:<16} {value}\n" for key, value in settings.items())
    with open(settings["PARAMETERS_NAME"], "w") as fh:
        fh.write("\n".join(PARAMS) + "\n")
    try:
        result = subprocess.run([SEX, image, "-c", config], capture_output=True, text=True, cwd=folder, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StepError(f"{image}: cannot run {SEX}: {exc}") from exc
    if result.returncode != 0 or not os.path.exists(settings["CATALOG_NAME"]):
        raise StepError(f"{image}: SExtractor failed (exit {result.returncode}): {result.stderr.strip()[-300:]}")


def read_ldac(path):
    """(sources Table, SExtractor's LDAC_IMHEAD header) of a FITS_LDAC catalogue."""
    with fits.open(path) as hdul:
        cards = hdul["LDAC_IMHEAD"].data["Field Header Card"][0]
        header = fits.Header.fromstring("".join(card.ljust(80) for card in cards))
        sources = Table(hdul["LDAC_OBJECTS"].data)
    return sources, header


def star_like(sources):
    """Unflagged (so unsaturated), star-like sources with a measured FWHM."""
    keep = (sources["FLAGS"] == 0) & (sources["CLASS_STAR"] >= STAR_CLASS) & (sources["FWHM_IMAGE"] > 0)
    return sources[keep]


def median_fwhm(sources):
    """Median FWHM_IMAGE in pixels, or None for no sources."""
    return float(np.median(sources["FWHM_IMAGE"])) if len(sources) else None


def first_pass_seeing(sources, scale):
    """Seeing for SExtractor's classifier (arcsec, or pixels without a WCS) from unflagged sources."""
    fwhm = median_fwhm(sources[(sources["FLAGS"] == 0) & (sources["FWHM_IMAGE"] > 0)])
    if fwhm is None:
        return SEEING_GUESS_ARCSEC
    return fwhm * (scale or 1.0)


def extract(image, catalog):
    """SExtractor's two passes over image; writes catalog atomically. Returns (sources, sky, scale)."""
    try:
        header = fits.getheader(image)
    except (OSError, ValueError) as exc:
        raise StepError(f"{image}: cannot read the frame: {exc}") from exc
    scale = pixel_scale_arcsec(header)
    folder = os.path.dirname(catalog)
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="downlink-sources-") as tmp:
        params = os.path.join(tmp, "downlink.param")
        first = os.path.join(tmp, "first.cat")
        run_sextractor(image, sextractor_settings(first, params, SEEING_GUESS_ARCSEC, header), tmp)
        seeing = first_pass_seeing(read_ldac(first)[0], scale)
        with atomic_path(catalog) as partial:
            os.unlink(partial)  # SExtractor creates it (run_sextractor checks that it did)
            run_sextractor(image, sextractor_settings(partial, params, seeing, header), tmp)
            sources, sex_header = read_ldac(partial)
    return sources, float(sex_header["SEXBKGND"]), scale


def measure(sources, sky, scale):
    """The QC numbers of one frame from its catalogue, global background and pixel scale."""
    fwhm = median_fwhm(star_like(sources))
    return {"n_sources": len(sources), "fwhm_pix": fwhm,
            "fwhm_arcsec": fwhm * scale if fwhm is not None and scale else None, "sky": sky}


def judge(qc, lim):
    """(qc_ok, reasons) of a frame's QC numbers against the limits."""
    reasons = []
    if qc["n_sources"] < lim["min_sources"]:
        reasons.append(f"{qc['n_sources']} sources < {lim['min_sources']}")
    if qc["fwhm_pix"] is None:
        reasons.append("no star-like sources to measure the seeing")
    elif qc["fwhm_arcsec"] is None:
        reasons.append("no celestial WCS: seeing not checked")
    elif qc["fwhm_arcsec"] > lim["max_fwhm_arcsec"]:
        reasons.append(f"FWHM {qc['fwhm_arcsec']:.2f} arcsec > {lim['max_fwhm_arcsec']:g}")
    if qc["sky"] is not None and qc["sky"] > lim["max_sky"]:
        reasons.append(f"sky {qc['sky']:.0f} e- > {lim['max_sky']:g}")
    return not reasons, reasons


def store(conn, reduced_id, qc, ok, reasons, catalog):
    conn.execute(
        "INSERT INTO frame_qc (reduced_id, n_sources, fwhm_pix, fwhm_arcsec, sky, qc_ok, qc_reasons, catalog_path,"
        " run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (reduced_id) DO UPDATE SET"
        " n_sources = EXCLUDED.n_sources, fwhm_pix = EXCLUDED.fwhm_pix, fwhm_arcsec = EXCLUDED.fwhm_arcsec,"
        " sky = EXCLUDED.sky, qc_ok = EXCLUDED.qc_ok, qc_reasons = EXCLUDED.qc_reasons,"
        " catalog_path = EXCLUDED.catalog_path, run_id = EXCLUDED.run_id, measured_at = now()",
        (reduced_id, qc["n_sources"], qc["fwhm_pix"], qc["fwhm_arcsec"], qc["sky"], ok, reasons,
         layout.relative(catalog), runinfo.run_id()))


def describe(name, qc, ok, reasons):
    """The one line printed per frame."""
    fwhm = (f"{qc['fwhm_arcsec']:.2f}\"" if qc["fwhm_arcsec"] is not None else "n/a") + \
        (f" ({qc['fwhm_pix']:.2f} px)" if qc["fwhm_pix"] is not None else "")
    verdict = "QC ok" if ok else "QC FAIL: " + "; ".join(reasons)
    return f"{name}: {qc['n_sources']} sources, FWHM {fwhm}, sky {qc['sky']:.0f} e-; {verdict}"


def run(args):
    night = layout.parse_night(args.night)
    lim = {"min_sources": args.min_sources, "max_fwhm_arcsec": args.max_fwhm_arcsec, "max_sky": args.max_sky}
    with db.connect() as conn:
        frames = conn.execute("SELECT reduced_id, path FROM reduced_frames WHERE night = %s ORDER BY path",
                              (night,)).fetchall()
        catalogs = layout.night_dir("catalogs", night, create=bool(frames))
        failed = 0
        for reduced_id, path in frames:
            image = os.path.join(layout.data_root(), path)
            catalog = os.path.join(catalogs, stem(os.path.basename(path)) + ".cat")
            qc = measure(*extract(image, catalog))
            ok, reasons = judge(qc, lim)
            store(conn, reduced_id, qc, ok, reasons, catalog)
            failed += not ok
            print(describe(os.path.basename(path), qc, ok, reasons), flush=True)
    print(f"night {night}: {len(frames)} reduced frames measured, {failed} outside the QC limits")
    return 0
