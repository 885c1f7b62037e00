"""`downlink calibrate --night YYYY-MM-DD [--mem-limit-mb 512]`: masters, then reduced science frames.

For each setup (instrument and frame shape) of the night, the step does two things.
1. It builds masters from the night's frames (see masters.py): a bias, a dark, and a flat per
   filter, each written to masters/<night>/ and recorded in calibration_masters.
2. It reduces every science ('object') frame in stages, ccdproc's sequence: subtract the bias,
   subtract the dark scaled to the exposure time, divide by the flat, convert to electrons
   (GAIN), repair bad pixels (flat response < 0.5) from their neighbours, and remove cosmic rays
   (L.A.Cosmic, astroscrappy). It writes reduced/<night>/<stem>.fits (float32, electrons) with
   the raw header and provenance keywords (DL_RAW, DL_MBIAS, DL_MDARK, DL_MFLAT, DL_RUNID,
   DL_CODEV, DL_DATSH = sha256 of the data array), and records a reduced_frames row.

A calibration this night lacks is taken from the nearest earlier night with one for the same
setup, and the frame's notes say so. A bias or flat found for no night at all means the frame
cannot be reduced. It is quarantined (stage calibrate) with the reason, and the rest go on. A
missing dark is only noted.

Noise (noise_raw, noise_reduced): a robust, sigma-clipped standard deviation in electrons over
the central box of half the frame's width and height. The raw value is measured after bias
subtraction and conversion to electrons. The reduced frame has the flat-field pattern,
vignetting, hot pixels and cosmic rays removed, so its noise is lower.
Exit codes: 0 done (frames may be quarantined); 1 failure; 2 bad usage.
"""
import hashlib
import os
import re
import warnings
from collections import defaultdict

import numpy as np
from astropy import units as u
from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from ccdproc import cosmicray_lacosmic, gain_correct, subtract_bias

from downlink import db, layout, masters, runinfo, settings
from downlink.checksum import sha256_file
from downlink.outputs import atomic_path
from downlink.quarantine import quarantine, release

BAD_RESPONSE = 0.5  # flat response below which a pixel is repaired from its neighbours


def add_parser(sub):
    p = sub.add_parser("calibrate", help="build master calibrations and reduce science frames",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--night", required=True)
    p.add_argument("--mem-limit-mb", type=float, default=settings.get("combine_mem_mb"),
                   help="memory limit of each combine (default: $DOWNLINK_COMBINE_MEM_MB or %(default)s MB)")
    return p


def stem(filename):
    return re.sub(r"\.(fits|fit|fts)(\.fz|\.gz)?$", "", filename, flags=re.IGNORECASE)


def noise_box(data):
    ny, nx = data.shape
    return data[ny // 4: ny - ny // 4, nx // 4: nx - nx // 4]


def robust_noise(data):
    _, _, std = sigma_clipped_stats(noise_box(data), sigma=3.0, maxiters=5)
    return float(std)


def gain_of(header):
    return float(header.get("GAIN", 1.0) or 1.0)


def normalised_flat(flat):
    """flat_correct(min_value=BAD_RESPONSE)'s divisor: the response floored at BAD_RESPONSE, over its
    mean. The same for every frame, so it is made once and kept on the master flat."""
    if "_downlink_normalised" not in flat.__dict__:
        floored = flat.copy()
        floored.data[floored.data < BAD_RESPONSE] = BAD_RESPONSE
        flat.__dict__["_downlink_normalised"] = floored.divide(floored.data.mean() * floored.unit)
    return flat.__dict__["_downlink_normalised"]


def apply_calibrations(raw, bias, dark, flat):
    """The arithmetic stages: bias, scaled dark, flat (response floored at BAD_RESPONSE), electrons."""
    ccd = masters.remove_bias_and_dark(raw, bias, dark)
    flattened = ccd.divide(normalised_flat(flat))  # = flat_correct(ccd, flat, min_value=BAD_RESPONSE)
    flattened.meta = ccd.meta.copy()
    return gain_correct(flattened, gain_of(raw.header) * u.electron / u.adu)


def reduce_frame(raw, bias, dark, flat):
    """The reduction stages; returns (reduced CCDData in electrons, raw noise, reduced noise)."""
    gain = gain_of(raw.header) * u.electron / u.adu
    noise_raw = robust_noise(gain_correct(subtract_bias(raw, bias), gain).data)
    ccd = apply_calibrations(raw, bias, dark, flat)
    bad = flat.data < BAD_RESPONSE
    if bad.any():
        data = ccd.data.copy()
        data[bad] = np.nan
        ccd.data = interpolate_replace_nans(data, Gaussian2DKernel(1.0))
    readnoise = float(raw.header.get("RDNOISE", 5.0) or 5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ccd = cosmicray_lacosmic(ccd, gain=1.0, readnoise=readnoise, sigclip=5.0, gain_apply=False)
    ccd.mask = None
    return ccd, noise_raw, robust_noise(ccd.data)


def write_reduced(path, ccd, provenance):
    data = np.asarray(ccd.data, dtype=np.float32)
    header = ccd.header.copy()
    for key in ("BZERO", "BSCALE"):
        header.remove(key, ignore_missing=True)
    header["BUNIT"] = "electron"
    header.update(provenance)
    header["DL_DATSH"] = hashlib.sha256(np.ascontiguousarray(data)).hexdigest()  # sha256 of the data array's bytes
    with atomic_path(path) as tmp:
        fits.PrimaryHDU(data, header=header).writeto(tmp, overwrite=True)


def night_frames(conn, night):
    """{setup: {imagetyp: [rows]}} for the night's bias, dark, flat and object frames."""
    groups = defaultdict(lambda: defaultdict(list))
    for row in conn.execute(
            "SELECT obs_id, path, filename, imagetyp, coalesce(filter, ''), exptime, coalesce(instrument, ''),"
            " naxis1, naxis2 FROM observations WHERE night = %s AND imagetyp IN ('bias', 'dark', 'flat', 'object')"
            " AND naxis1 IS NOT NULL ORDER BY date_obs NULLS LAST, filename", (night,)):
        obs_id, path, filename, kind, filt, exptime, instrument, n1, n2 = row
        groups[(instrument, n1, n2)][kind].append(
            {"obs_id": obs_id, "path": path, "filename": filename, "filter": filt, "exptime": exptime})
    return groups


def build_masters(conn, night, setup, frames, mem_limit):
    """Masters this night's frames allow, for one setup; prints what it made."""
    full = lambda rows: [os.path.join(layout.data_root(), r["path"]) for r in rows]  # noqa: E731
    made = []
    bias = dark = None
    if frames["bias"]:
        bias = masters.build_bias(full(frames["bias"]), mem_limit)
        masters.save(conn, night, setup, "bias", "", bias, [r["path"] for r in frames["bias"]])
        made.append("bias")
    else:
        found = masters.find(conn, night, setup, "bias")
        bias = masters.load(found[2]) if found else None
    if bias is None:
        return made
    darks = [r for r in frames["dark"] if r["exptime"]]
    if darks:
        dark = masters.build_dark(full(darks), bias, mem_limit)
        masters.save(conn, night, setup, "dark", "", dark, [r["path"] for r in darks])
        made.append("dark")
    else:
        found = masters.find(conn, night, setup, "dark")
        dark = masters.load(found[2]) if found else None
    by_filter = defaultdict(list)
    for r in frames["flat"]:
        by_filter[r["filter"]].append(r)
    for filt, rows in sorted(by_filter.items()):
        flat = masters.build_flat(full(rows), bias, dark, mem_limit)
        masters.save(conn, night, setup, "flat", filt, flat, [r["path"] for r in rows])
        made.append(f"flat {filt}".strip())
    return made


def calibrations_for(conn, night, setup, filt):
    """({kind: (id, night, path) or None}, notes) for reducing one frame."""
    found, notes = {}, []
    for kind, kfilt in (("bias", ""), ("dark", ""), ("flat", filt)):
        row = masters.find(conn, night, setup, kind, kfilt)
        found[kind] = row
        label = f"{kind} {kfilt}".strip()
        if row is None:
            notes.append(f"no master {label} for {setup[0] or 'this instrument'} {setup[1]}x{setup[2]}"
                         f" on or before {night}")
        elif row[1] != night:
            notes.append(f"{label} from {row[1]} (none this night)")
    return found, notes


def reduce_setup(conn, night, setup, science, loaded):
    counts = {"reduced": 0, "quarantined": 0}
    reduced_dir = layout.night_dir("reduced", night, create=True)
    for frame in science:
        cals, notes = calibrations_for(conn, night, setup, frame["filter"])
        if cals["bias"] is None or cals["flat"] is None:
            quarantine(night, frame["filename"], "calibrate", "cannot be reduced: " + "; ".join(
                n for n in notes if n.startswith("no master") and "dark" not in n))
            counts["quarantined"] += 1
            continue
        release(night, frame["filename"], "calibrate")
        load = lambda row: loaded.setdefault(row[2], masters.load(row[2])) if row else None  # noqa: E731
        raw = masters.read_raw(os.path.join(layout.data_root(), frame["path"]))
        ccd, noise_raw, noise_reduced = reduce_frame(raw, load(cals["bias"]), load(cals["dark"]), load(cals["flat"]))
        path = os.path.join(reduced_dir, stem(frame["filename"]) + ".fits")
        write_reduced(path, ccd, {
            "DL_RAW": frame["path"], "DL_MBIAS": cals["bias"][2],
            "DL_MDARK": cals["dark"][2] if cals["dark"] else "none", "DL_MFLAT": cals["flat"][2],
            "DL_RUNID": runinfo.run_id(), "DL_CODEV": runinfo.code_version()})
        conn.execute(
            "INSERT INTO reduced_frames (obs_id, night, path, sha256, bias_master_id, dark_master_id, flat_master_id,"
            " noise_raw, noise_reduced, notes, code_version, run_id) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (obs_id) DO UPDATE SET"
            " path = EXCLUDED.path, sha256 = EXCLUDED.sha256, bias_master_id = EXCLUDED.bias_master_id,"
            " dark_master_id = EXCLUDED.dark_master_id, flat_master_id = EXCLUDED.flat_master_id,"
            " noise_raw = EXCLUDED.noise_raw, noise_reduced = EXCLUDED.noise_reduced, notes = EXCLUDED.notes,"
            " code_version = EXCLUDED.code_version, run_id = EXCLUDED.run_id, created_at = now()",
            (frame["obs_id"], night, layout.relative(path), sha256_file(path), cals["bias"][0],
             cals["dark"][0] if cals["dark"] else None, cals["flat"][0], noise_raw, noise_reduced, notes,
             runinfo.code_version(), runinfo.run_id()))
        counts["reduced"] += 1
        print(f"  {frame['filename']}: noise {noise_raw:.1f} -> {noise_reduced:.1f} e-"
              + (f" ({'; '.join(notes)})" if notes else ""))
    return counts


def run(args):
    night = layout.parse_night(args.night)
    mem_limit = int(args.mem_limit_mb * 1024 * 1024)
    totals = {"reduced": 0, "quarantined": 0}
    with db.connect() as conn:
        # A science frame with no 2-D image (a 1-D spectrum, a table) has nothing to reduce: said
        # so, rather than skipped unaccounted (diagnostics counts every science frame).
        for (filename,) in conn.execute("SELECT filename FROM observations WHERE night = %s AND imagetyp = 'object'"
                                        " AND naxis1 IS NULL ORDER BY filename", (night,)).fetchall():
            quarantine(night, filename, "calibrate", "cannot be reduced: no 2-D image (a spectrum or a table)")
            totals["quarantined"] += 1
        for setup, frames in sorted(night_frames(conn, night).items()):
            made = build_masters(conn, night, setup, frames, mem_limit)
            conn.commit()  # masters are usable by later setups and runs even if a reduction fails
            label = f"{setup[0] or '(no instrument)'} {setup[1]}x{setup[2]}"
            print(f"{label}: masters made: {', '.join(made) or 'none'}; {len(frames['object'])} science frames")
            counts = reduce_setup(conn, night, setup, frames["object"], {})
            conn.commit()
            for key in totals:
                totals[key] += counts[key]
    print(f"night {night}: {totals['reduced']} reduced, {totals['quarantined']} quarantined")
    return 0
