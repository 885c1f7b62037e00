"""The calibration benchmark's in-container side (astro image; /data = build/bench-data/calibration).
  gen N_BIAS N_SCI SIZE   write bias/, science/ (uint16, BZERO 32768 like DLCAM) and masters/ (dark rate, flat)
  run CASE [CASE ...]     each case in its own child process; one JSON line per case:
                          {"case", "seconds", "maxrss_mb"} (peak resident memory of that child)
Cases: bias-downlink (masters.build_bias: ccdproc combine, 5-sigma clipped median), bias-numpy
(np.median of the stack), reduce-downlink (masters.read_raw, calibrate.apply_calibrations and
calibrate.write_reduced per frame), reduce-numpy (the same arithmetic on arrays, fits.writeto), and
check (the two sides' outputs agree).
"""
import glob
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from astropy.io import fits

D = os.environ.get("DOWNLINK_DATA", "/data")
MEM_LIMIT = float(os.environ.get("DOWNLINK_COMBINE_MEM_MB", "512")) * 1024 * 1024
EXPTIME, GAIN = 120.0, 1.5


def frames(kind):
    return sorted(glob.glob(os.path.join(D, kind, "*.fits")))


def gen(n_bias, n_sci, size):
    rng = np.random.default_rng(7)
    for kind in ("bias", "science", "masters", "out-downlink", "out-numpy"):
        os.makedirs(os.path.join(D, kind), exist_ok=True)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    flat = (1.0 - 0.03 * (((x - size / 2) ** 2 + (y - size / 2) ** 2) / (size / 2) ** 2)).astype(np.float32)
    flat[:, size * 3 // 10] = 0.05  # a dead column, as DLCAM has (repaired later, not in this benchmark)
    dark = np.full((size, size), 0.05 / GAIN, np.float32)
    fits.PrimaryHDU(flat).writeto(os.path.join(D, "masters", "flat.fits"), overwrite=True)
    fits.PrimaryHDU(dark).writeto(os.path.join(D, "masters", "dark.fits"), overwrite=True)
    pattern = 1000.0 + 2.0 * np.sin(x / 37.0)
    header = {"INSTRUME": "DLCAM", "GAIN": GAIN, "RDNOISE": 6.0}
    for i in range(n_bias):
        write_u16(os.path.join(D, "bias", f"bias{i:03d}.fits"), pattern + rng.normal(0, 4.0, (size, size)),
                  {**header, "IMAGETYP": "BIAS", "EXPTIME": 0.0})
    for i in range(n_sci):
        sky = rng.poisson(flat.clip(0.05) * 800.0 + dark * EXPTIME).astype(np.float32)
        write_u16(os.path.join(D, "science", f"sci{i:03d}.fits"), pattern + sky + rng.normal(0, 4.0, (size, size)),
                  {**header, "IMAGETYP": "OBJECT", "EXPTIME": EXPTIME})
    print(json.dumps({"bias": n_bias, "science": n_sci, "size": size}))


def write_u16(path, data, header):
    hdu = fits.PrimaryHDU(np.clip(np.rint(data), 0, 65535).astype(np.uint16), header=fits.Header(header))
    hdu.writeto(path, overwrite=True)


def bias_downlink():
    from downlink import masters
    master = masters.build_bias(frames("bias"), MEM_LIMIT)
    np.save(os.path.join(D, "out-downlink", "bias.npy"), np.asarray(master.data, np.float32))


def bias_numpy():
    stack = np.stack([fits.getdata(p).astype(np.float32) for p in frames("bias")])
    np.save(os.path.join(D, "out-numpy", "bias.npy"), np.median(stack, axis=0))


def reduce_downlink():
    from downlink import calibrate, masters
    bias = masters.CCDData(np.load(os.path.join(D, "out-numpy", "bias.npy")), unit="adu")
    dark, flat = (masters.load(os.path.join(D, "masters", f"{k}.fits")) for k in ("dark", "flat"))
    for path in frames("science"):
        ccd = calibrate.apply_calibrations(masters.read_raw(path), bias, dark, flat)
        calibrate.write_reduced(os.path.join(D, "out-downlink", os.path.basename(path)), ccd, {"DL_RAW": path})


def reduce_numpy():
    bias = np.load(os.path.join(D, "out-numpy", "bias.npy"))
    dark, flat = (fits.getdata(os.path.join(D, "masters", f"{k}.fits")) for k in ("dark", "flat"))
    flat = np.maximum(flat, 0.5)
    flat /= flat.mean()  # ccdproc.flat_correct divides by the flat's mean too
    for path in frames("science"):
        with fits.open(path, memmap=False) as hdul:
            data, header = hdul[0].data.astype(np.float32), hdul[0].header
        reduced = (data - bias - dark * float(header["EXPTIME"])) / flat * float(header["GAIN"])
        fits.PrimaryHDU(reduced.astype(np.float32), header=header).writeto(
            os.path.join(D, "out-numpy", os.path.basename(path)), overwrite=True)


def check():
    """The two sides must compute the same thing: masters within a clipped median's difference,
    reduced frames equal to float32 rounding."""
    b_dl, b_np = (np.load(os.path.join(D, side, "bias.npy")) for side in ("out-downlink", "out-numpy"))
    worst = 0.0
    for path in frames("science"):
        name = os.path.basename(path)
        a, b = (fits.getdata(os.path.join(D, side, name)) for side in ("out-downlink", "out-numpy"))
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0))))
    result = {"bias_median_abs_diff_adu": float(np.median(np.abs(b_dl - b_np))),
              "bias_max_abs_diff_adu": float(np.max(np.abs(b_dl - b_np))), "reduced_max_rel_diff": worst}
    if result["bias_median_abs_diff_adu"] > 0.5 or worst > 1e-4:
        raise SystemExit(f"calibration: the Downlink and numpy outputs differ: {result}")
    return result


CASES = {"bias-downlink": bias_downlink, "bias-numpy": bias_numpy, "reduce-downlink": reduce_downlink,
         "reduce-numpy": reduce_numpy}


def child(case):
    from downlink import calibrate, masters  # noqa: F401 - imported before the clock starts, for every case
    start = time.perf_counter()
    CASES[case]()
    seconds = time.perf_counter() - start
    print(json.dumps({"case": case, "seconds": seconds,
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(*map(int, sys.argv[2:5]))
    elif sys.argv[1] == "child":
        child(sys.argv[2])
    elif sys.argv[1] == "check":
        print(json.dumps(check()))
    else:
        for case in sys.argv[2:]:
            out = subprocess.run([sys.executable, __file__, "child", case], check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            print(out.strip().splitlines()[-1], flush=True)
