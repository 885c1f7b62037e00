"""`downlink sources --night YYYY-MM-DD`: SExtractor on every reduced frame, and per-frame QC.

Each catalogue is written to catalogs/<night>/<stem>.cat (SExtractor ASCII_HEAD). Each frame's QC
goes into frame_qc:
  n_sources    detections (DETECT_THRESH 3 sigma over 5 pixels)
  fwhm_pix     median FWHM_IMAGE of clean (FLAGS 0), star-like (CLASS_STAR > 0.5) sources
  fwhm_arcsec  the same in arcsec, through the frame's WCS pixel scale (empty without a WCS)
  sky          median local background (BACKGROUND) under the sources, in the frame's units
               (electrons for reduced frames)
A frame fails QC (qc_ok false, with the reasons) when it is outside these limits, each one
overridable from the environment:
  DOWNLINK_QC_MIN_SOURCES      fewer sources than this           (default 5)
  DOWNLINK_QC_MAX_FWHM_ARCSEC  seeing worse than this            (default 3.0)
  DOWNLINK_QC_MAX_SKY          sky brighter than this, electrons (default 20000)
Exit codes: 0 done (frames may fail QC: that is data, not a step failure); 1 failure; 2 bad usage.
"""
import os
import shutil
import subprocess
import tempfile

import numpy as np
from astropy.io import ascii as asciitable
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from downlink import StepError, db, layout, runinfo
from downlink.calibrate import stem

SEX = "source-extractor"
SEX_SHARE = "/usr/share/source-extractor"
PARAMS = ("NUMBER", "X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "FWHM_IMAGE", "FLAGS", "CLASS_STAR", "ELONGATION", "BACKGROUND")


def limits(env=None):
    env = os.environ if env is None else env
    return {
        "min_sources": int(env.get("DOWNLINK_QC_MIN_SOURCES") or 5),
        "max_fwhm_arcsec": float(env.get("DOWNLINK_QC_MAX_FWHM_ARCSEC") or 3.0),
        "max_sky": float(env.get("DOWNLINK_QC_MAX_SKY") or 20000),
    }


def add_parser(sub):
    p = sub.add_parser("sources", help="SExtractor on reduced frames, with per-frame QC",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--night", required=True)
    return p


def extract(image, catalog):
    """Run SExtractor on image, writing catalog atomically; returns the catalogue as a Table."""
    with tempfile.TemporaryDirectory() as tmp:
        params = os.path.join(tmp, "downlink.param")
        with open(params, "w") as fh:
            fh.write("\n".join(PARAMS) + "\n")
        out = os.path.join(tmp, "out.cat")
        cmd = [SEX, image, "-c", os.path.join(SEX_SHARE, "default.sex"), "-CATALOG_NAME", out,
               "-CATALOG_TYPE", "ASCII_HEAD", "-PARAMETERS_NAME", params,
               "-FILTER_NAME", os.path.join(SEX_SHARE, "gauss_2.5_5x5.conv"),
               "-STARNNW_NAME", os.path.join(SEX_SHARE, "default.nnw"),
               "-DETECT_THRESH", "3", "-DETECT_MINAREA", "5", "-GAIN", "1.0", "-SATUR_LEVEL", "1e9",
               "-PIXEL_SCALE", "0", "-SEEING_FWHM", "1.5", "-BACK_SIZE", "64", "-VERBOSE_TYPE", "QUIET"]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=600)
        if result.returncode != 0 or not os.path.exists(out):
            raise StepError(f"{image}: SExtractor failed ({result.returncode}): {result.stderr.strip()[-500:]}")
        table = asciitable.read(out, format="sextractor")
        # The temporary folder may be on another filesystem than the data volume: copy, then rename.
        os.makedirs(os.path.dirname(catalog), exist_ok=True)
        partial = catalog + ".tmp"
        shutil.copyfile(out, partial)
        os.replace(partial, catalog)
    return table


def pixel_scale_arcsec(header):
    """Mean pixel scale from the celestial WCS, or None."""
    try:
        wcs = WCS(header).celestial
        if not wcs.has_celestial:
            return None
        return float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)
    except Exception:  # noqa: BLE001 - no usable WCS means no arcsec scale
        return None


def measure(table, scale):
    """QC numbers from a SExtractor catalogue."""
    n = len(table)
    fwhm = sky = None
    if n:
        clean = table[(table["FLAGS"] == 0) & (table["FWHM_IMAGE"] > 0.5)]
        stars = clean[clean["CLASS_STAR"] > 0.5]
        pick = stars if len(stars) >= 3 else clean
        if len(pick):
            fwhm = float(np.median(pick["FWHM_IMAGE"]))
        sky = float(np.median(table["BACKGROUND"]))
    return {"n_sources": n, "fwhm_pix": fwhm, "fwhm_arcsec": fwhm * scale if fwhm and scale else None, "sky": sky}


def judge(qc, lim):
    """(ok, reasons) against the QC limits."""
    reasons = []
    if qc["n_sources"] < lim["min_sources"]:
        reasons.append(f"{qc['n_sources']} sources < {lim['min_sources']}")
    if qc["fwhm_arcsec"] is not None and qc["fwhm_arcsec"] > lim["max_fwhm_arcsec"]:
        reasons.append(f"FWHM {qc['fwhm_arcsec']:.2f} arcsec > {lim['max_fwhm_arcsec']}")
    if qc["fwhm_pix"] is None:
        reasons.append("no clean sources to measure the FWHM")
    if qc["sky"] is not None and qc["sky"] > lim["max_sky"]:
        reasons.append(f"sky {qc['sky']:.0f} > {lim['max_sky']:.0f}")
    return not reasons, reasons


def run(args):
    night = layout.parse_night(args.night)
    lim = limits()
    catalogs = layout.night_dir("catalogs", night, create=True)
    with db.connect() as conn:
        frames = conn.execute("SELECT reduced_id, path FROM reduced_frames WHERE night = %s ORDER BY path",
                              (night,)).fetchall()
        flagged = 0
        for reduced_id, path in frames:
            image = os.path.join(layout.data_root(), path)
            catalog = os.path.join(catalogs, stem(os.path.basename(path)) + ".cat")
            qc = measure(extract(image, catalog), pixel_scale_arcsec(fits.getheader(image)))
            ok, reasons = judge(qc, lim)
            flagged += not ok
            conn.execute(
                "INSERT INTO frame_qc (reduced_id, n_sources, fwhm_pix, fwhm_arcsec, sky, qc_ok, qc_reasons,"
                " catalog_path, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (reduced_id) DO UPDATE"
                " SET n_sources = EXCLUDED.n_sources, fwhm_pix = EXCLUDED.fwhm_pix, fwhm_arcsec = EXCLUDED.fwhm_arcsec,"
                " sky = EXCLUDED.sky, qc_ok = EXCLUDED.qc_ok, qc_reasons = EXCLUDED.qc_reasons,"
                " catalog_path = EXCLUDED.catalog_path, run_id = EXCLUDED.run_id, measured_at = now()",
                (reduced_id, qc["n_sources"], qc["fwhm_pix"], qc["fwhm_arcsec"], qc["sky"], ok, reasons,
                 layout.relative(catalog), runinfo.run_id()))
            fwhm = f"{qc['fwhm_arcsec']:.2f}\"" if qc["fwhm_arcsec"] else "n/a"
            print(f"  {os.path.basename(path)}: {qc['n_sources']} sources, FWHM {fwhm}, sky {qc['sky'] or 0:.0f}"
                  f" {'ok' if ok else 'QC FAIL: ' + '; '.join(reasons)}")
    print(f"night {night}: {len(frames)} frames measured, {flagged} outside the QC limits")
    return 0
