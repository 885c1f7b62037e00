"""The team's scripts (images/astro/scripts, on PATH in the image): each one run by its bare name
on a small generated night, its output checked against astropy and numpy."""
import collections
import csv
import os
import re
import shutil
import stat
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from downlink import cli

NIGHT = "2026-11-24"
SCRIPTS_DIR = "/opt/downlink/scripts"
SCRIPTS = ("header-summary", "bias-levels", "fits-verify", "pixstats", "obslog")
OUTPUT = {  # script -> its output file, under products/<night>/<script>/
    "header-summary": "headers.csv",
    "bias-levels": "imstat.txt",
    "fits-verify": "report.txt",
    "pixstats": "pixstats.csv",
    "obslog": "obslog.txt",
}
INPUT_AREA = {"header-summary": "raw", "bias-levels": "raw", "fits-verify": "raw", "pixstats": "reduced"}
# 3 biases, 1 dark at each of 2 times, 1 flat in each of 2 filters, 3 targets x 2 filters x 1
SMALL = ["--size", "48", "--n-bias", "3", "--n-dark", "1", "--n-flat", "1", "--n-science", "1"]
COUNTS = {"BIAS": 3, "DARK": 2, "FLAT": 2, "OBJECT": 6}


def run(name, root, args=("--night", NIGHT), env=None):
    env = dict(os.environ if env is None else env, DOWNLINK_DATA=str(root))
    return subprocess.run([name, *args], env=env, capture_output=True, text=True, timeout=120)


def output(root, name, night=NIGHT):
    return root / "products" / night / name / OUTPUT[name]


def assert_written_cleanly(path):
    """Readable by all, and no temporary file left next to it."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == [path.name]


def make_raw_night(root, night=NIGHT):
    """A small generated night in raw/<night>/, read-only like the archive step leaves it."""
    source = root / "source"
    assert cli.main(["make-night", "--night", night, "--out", str(source), "--seed", "5", *SMALL]) == 0
    raw = root / "raw" / night
    raw.mkdir(parents=True)
    for name in sorted(os.listdir(source / night)):
        if name.endswith(".fits"):
            shutil.copy(source / night / name, raw / name)
            os.chmod(raw / name, 0o444)
    return raw


def headers(raw):
    """{file: primary header} of the night's frames."""
    return {name: fits.getheader(raw / name) for name in sorted(os.listdir(raw))}


def write_reduced(folder):
    """Synthetic reduced frames with NaNs, BLANKs, an extension and tile compression.
    Returns {file: (hdu, the valid pixels as float64)}: what numpy says pixstats must find."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    expected = {}

    data = rng.normal(1000, 30, (30, 40)).astype(np.float32)
    data[rng.random(data.shape) < 0.05] = np.nan  # reduced frames mark dead pixels NaN
    fits.PrimaryHDU(data).writeto(folder / "a_float_nan.fits")
    expected["a_float_nan.fits"] = (0, data[~np.isnan(data)].astype(float))

    data = rng.normal(-5, 2, (21, 33)).astype(np.float32)  # odd pixel count: a single median
    fits.PrimaryHDU(data).writeto(folder / "b_float_odd.fits")
    expected["b_float_odd.fits"] = (0, data.ravel().astype(float))

    data = rng.normal(50, 5, (10, 20)).astype(np.float32)  # empty primary, image in HDU 1
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data)]).writeto(folder / "c_mef.fits")
    expected["c_mef.fits"] = (1, data.ravel().astype(float))

    data = rng.integers(0, 60000, (16, 25)).astype(np.int32)  # lossless RICE
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1")]).writeto(
        folder / "d_compressed.fits.fz")
    expected["d_compressed.fits.fz"] = (1, data.ravel().astype(float))

    data = rng.integers(100, 200, (12, 12)).astype(np.int16)
    data[2, 3] = data[5, 5] = -32768
    hdu = fits.PrimaryHDU(data)
    hdu.header["BLANK"] = -32768  # integer frames mark missing pixels with BLANK
    hdu.writeto(folder / "e_int_blank.fits")
    expected["e_int_blank.fits"] = (0, data[data != -32768].astype(float))

    fits.PrimaryHDU(np.full((4, 4), np.nan, np.float32)).writeto(folder / "f_all_nan.fits")
    expected["f_all_nan.fits"] = (0, np.array([]))
    return expected


def truncate(src, dest, size):
    with open(src, "rb") as fh:
        dest.write_bytes(fh.read(size))


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """DOWNLINK_DATA with a generated raw night and synthetic reduced frames."""
    root = tmp_path_factory.mktemp("scripts") / "data"
    raw = make_raw_night(root)
    reduced = write_reduced(root / "reduced" / NIGHT)
    return root, raw, reduced


# --- every script: installed, --help, bad usage, missing and empty nights ---------------------

@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs_by_its_bare_name_from_the_scripts_folder(name):
    found = shutil.which(name)
    assert found == os.path.join(SCRIPTS_DIR, name)
    assert os.access(found, os.X_OK)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_says_how_to_call_it(name, tmp_path):
    out = run(name, tmp_path, ["--help"])
    assert out.returncode == 0, out.stderr
    assert "--night YYYY-MM-DD" in out.stdout and OUTPUT[name] in out.stdout


@pytest.mark.parametrize("args", [(), ("--night",), ("--night", "24-11-2026"), ("--night", "2026-11-31"),
                                  ("--night", "2026-11-24x"), ("--night", NIGHT, "--bogus")],
                         ids=["none", "no-value", "dmy", "no-such-day", "trailing", "unknown-option"])
@pytest.mark.parametrize("name", SCRIPTS)
def test_bad_usage_exits_2(name, args, tmp_path):
    out = run(name, tmp_path, args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert name in out.stderr and "--night" in out.stderr
    assert not (tmp_path / "products").exists()


@pytest.mark.parametrize("name", [n for n in SCRIPTS if n in INPUT_AREA])
def test_a_missing_night_is_a_clear_failure(name, tmp_path):
    out = run(name, tmp_path)
    assert out.returncode == 1
    assert f"{name}: error:" in out.stderr and str(tmp_path / INPUT_AREA[name] / NIGHT) in out.stderr


def test_obslog_without_headers_csv_says_to_run_header_summary_first(tmp_path):
    out = run("obslog", tmp_path)
    assert out.returncode == 1
    assert "headers.csv" in out.stderr and "run header-summary first" in out.stderr


def test_an_empty_night_gives_empty_but_valid_outputs(tmp_path):
    (tmp_path / "raw" / NIGHT).mkdir(parents=True)
    (tmp_path / "reduced" / NIGHT).mkdir(parents=True)
    for name in SCRIPTS:  # in this order: obslog reads header-summary's table
        out = run(name, tmp_path)
        assert out.returncode == 0, (name, out.stderr)
        assert_written_cleanly(output(tmp_path, name))
    with open(output(tmp_path, "header-summary")) as fh:
        assert list(csv.reader(fh)) == [["file", "hdu", "IMAGETYP", "OBJECT", "FILTER", "EXPTIME", "DATE-OBS",
                                         "NAXIS1", "NAXIS2", "error"]]
    with open(output(tmp_path, "pixstats")) as fh:
        assert list(csv.reader(fh)) == [["file", "hdu", "naxis1", "naxis2", "n", "mean", "stddev", "min", "max",
                                         "median"]]
    assert output(tmp_path, "bias-levels").read_text() == "# image npix mean stddev min max\n"
    assert output(tmp_path, "fits-verify").read_text() == "# file\tstatus\treason\n"
    assert re.search(r"^TOTAL\s+0\s+0\.0$", output(tmp_path, "obslog").read_text(), re.M)


# --- header-summary -----------------------------------------------------------------------------

def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_header_summary_lists_every_raw_frame_with_its_headers(night):
    root, raw, _ = night
    out = run("header-summary", root)
    assert out.returncode == 0, out.stderr
    path = output(root, "header-summary")
    assert_written_cleanly(path)
    rows = read_csv(path)
    truth = headers(raw)
    assert [r["file"] for r in rows] == list(truth)
    assert collections.Counter(r["IMAGETYP"] for r in rows) == COUNTS
    for row in rows:
        h = truth[row["file"]]
        assert row["error"] == "" and row["hdu"] == "0"
        assert (row["IMAGETYP"], row["OBJECT"], row["DATE-OBS"]) == (h["IMAGETYP"], h["OBJECT"], h["DATE-OBS"])
        assert row["FILTER"] == h.get("FILTER", "")
        assert float(row["EXPTIME"]) == h["EXPTIME"]
        assert (int(row["NAXIS1"]), int(row["NAXIS2"])) == (48, 48)
    for kind, count in COUNTS.items():  # the summary on stdout
        assert re.search(rf"^\s+{kind}\s+{count}$", out.stdout, re.M)


def test_header_summary_reads_mef_and_compressed_files_and_lists_broken_ones(tmp_path, night):
    _, raw, _ = night
    folder = tmp_path / "raw" / NIGHT
    folder.mkdir(parents=True)
    science = next(n for n, h in headers(raw).items() if h["IMAGETYP"] == "OBJECT")
    data = fits.getdata(raw / science)
    primary = fits.PrimaryHDU()
    primary.header.update(IMAGETYP="OBJECT", OBJECT="M31", FILTER="V", EXPTIME=30.0, **{"DATE-OBS": "2026-11-24T22:00:00"})
    fits.HDUList([primary, fits.ImageHDU(data[:20, :30])]).writeto(folder / "mef.fits")
    fits.HDUList([primary, fits.CompImageHDU(data.astype(np.int32))]).writeto(folder / "comp.fits.fz")
    truncate(raw / science, folder / "broken.fits", 1000)  # cut inside the header: no END card
    (folder / "notes.txt").write_text("not FITS\n")

    out = run("header-summary", tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["file"]: r for r in read_csv(output(tmp_path, "header-summary"))}
    assert sorted(rows) == ["broken.fits", "comp.fits.fz", "mef.fits", "notes.txt"]
    assert (rows["mef.fits"]["hdu"], rows["mef.fits"]["NAXIS1"], rows["mef.fits"]["NAXIS2"]) == ("1", "30", "20")
    assert (rows["mef.fits"]["OBJECT"], rows["mef.fits"]["FILTER"], rows["mef.fits"]["EXPTIME"]) == ("M31", "V", "30.0")
    assert (rows["comp.fits.fz"]["hdu"], rows["comp.fits.fz"]["NAXIS1"]) == ("1", "48")
    assert rows["broken.fits"]["error"].startswith("OSError") and rows["broken.fits"]["IMAGETYP"] == ""
    assert rows["notes.txt"]["error"]
    assert "(unreadable) 2" in out.stdout


def test_header_summary_on_real_observatory_files(tmp_path, real_fits):
    folder = tmp_path / "raw" / NIGHT
    folder.mkdir(parents=True)
    names = sorted(n for n in os.listdir(real_fits) if ".fit" in n)
    for name in names:
        shutil.copy(os.path.join(real_fits, name), folder / name)
    out = run("header-summary", tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["file"]: r for r in read_csv(output(tmp_path, "header-summary"))}
    assert sorted(rows) == names
    assert [n for n, r in rows.items() if r["error"]] == ["lco_ldac_test_catalog_corrupt.fits"]
    lco = rows["lco1m_sinistro_raw_mef.fits"]  # empty primary, 4 amplifiers; OBSTYPE, not IMAGETYP
    assert (lco["hdu"], lco["IMAGETYP"], lco["NAXIS1"]) == ("1", "EXPOSE", "544")
    assert rows["decam_c4d_130105_065255_ooi_r_a1-N15.fits.fz"]["hdu"] == "1"  # tile-compressed
    assert rows["chandra_acis_events_chandra_time.fits"]["hdu"] == ""  # tables only


# --- bias-levels (IRAF) -------------------------------------------------------------------------

def read_imstat(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "# image npix mean stddev min max"
    return {f[0]: [float(v) for v in f[1:]] for f in (line.split() for line in lines[1:])}


def test_bias_levels_agree_with_astropy(night):
    root, raw, _ = night
    before = sorted(os.listdir(raw))
    # A bare environment: the launcher gives IRAF what it needs itself (downlink-env).
    out = run("bias-levels", root, env={"PATH": f"{SCRIPTS_DIR}:/usr/local/bin:/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout + out.stderr
    path = output(root, "bias-levels")
    assert_written_cleanly(path)
    stats = read_imstat(path)
    biases = [n for n, h in headers(raw).items() if h["IMAGETYP"] == "BIAS"]
    assert sorted(stats) == biases and len(biases) == COUNTS["BIAS"]
    for name in biases:
        data = fits.getdata(raw / name).astype(float)
        npix, mean, stddev, low, high = stats[name]
        assert npix == data.size
        assert mean == pytest.approx(data.mean(), rel=1e-3)
        assert stddev == pytest.approx(data.std(ddof=1), rel=1e-3)
        assert (low, high) == (data.min(), data.max())
    assert sorted(os.listdir(raw)) == before  # IRAF wrote nothing into the archive


def test_bias_levels_names_a_bias_iraf_cannot_read_and_keeps_the_others(tmp_path, night):
    _, raw, _ = night
    folder = tmp_path / "raw" / NIGHT
    folder.mkdir(parents=True)
    biases = [n for n, h in headers(raw).items() if h["IMAGETYP"] == "BIAS"]
    shutil.copy(raw / biases[0], folder / "good_bias.fits")
    truncate(raw / biases[1], folder / "cut_bias.fits", 2880 * 2)  # the header, half the pixels
    (folder / "notes.txt").write_text("not FITS\n")
    out = run("bias-levels", tmp_path)
    assert out.returncode == 1
    assert "cut_bias.fits" in out.stderr and "good_bias.fits" not in out.stderr
    assert sorted(read_imstat(output(tmp_path, "bias-levels"))) == ["good_bias.fits"]


# --- fits-verify --------------------------------------------------------------------------------

def read_report(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "# file\tstatus\treason"
    return {f[0]: f[1:] for f in (line.split("\t") for line in lines[1:])}


def test_fits_verify_passes_a_good_night(night):
    root, raw, _ = night
    out = run("fits-verify", root)
    assert out.returncode == 0, out.stderr
    path = output(root, "fits-verify")
    assert_written_cleanly(path)
    assert read_report(path) == {name: ["OK"] for name in os.listdir(raw)}


def test_fits_verify_flags_corrupt_files(tmp_path, night):
    _, raw, _ = night
    folder = tmp_path / "raw" / NIGHT
    folder.mkdir(parents=True)
    good = sorted(os.listdir(raw))[:2]
    for name in good:
        shutil.copy(raw / name, folder / name)
    truncate(raw / good[0], folder / "no_end.fits", 1000)  # cut inside the header: no END card
    # whole blocks, but the last one missing: only reading the data finds it
    truncate(raw / good[0], folder / "short_data.fits", os.path.getsize(raw / good[0]) - 2880)
    out = run("fits-verify", tmp_path)
    assert out.returncode == 1
    report = read_report(output(tmp_path, "fits-verify"))
    assert {n: r[0] for n, r in report.items()} == {good[0]: "OK", good[1]: "OK", "no_end.fits": "FAIL",
                                                     "short_data.fits": "FAIL"}
    assert "FITSIO status" in report["no_end.fits"][1] and "not a multiple of 2880" in report["no_end.fits"][1]
    errors = out.stderr.splitlines()
    assert len(errors) == 2 and "no_end.fits" in errors[0] and "short_data.fits" in errors[1]
    assert not any(name in out.stderr for name in good)


def test_fits_verify_on_real_observatory_files(tmp_path, real_fits):
    folder = tmp_path / "raw" / NIGHT
    folder.mkdir(parents=True)
    names = sorted(n for n in os.listdir(real_fits) if ".fit" in n)
    for name in names:
        shutil.copy(os.path.join(real_fits, name), folder / name)
    out = run("fits-verify", tmp_path)
    assert out.returncode == 1
    report = read_report(output(tmp_path, "fits-verify"))
    assert sorted(report) == names
    assert [n for n, r in report.items() if r[0] == "FAIL"] == ["lco_ldac_test_catalog_corrupt.fits"]


# --- pixstats (C, cfitsio) ----------------------------------------------------------------------

def test_pixstats_agree_with_numpy(night):
    root, _, expected = night
    out = run("pixstats", root)
    assert out.returncode == 0, out.stderr
    path = output(root, "pixstats")
    assert_written_cleanly(path)
    rows = {r["file"]: r for r in read_csv(path)}
    assert sorted(rows) == sorted(expected)
    for name, (hdu, valid) in expected.items():
        row = rows[name]
        assert int(row["hdu"]) == hdu and int(row["n"]) == valid.size, name
        got = [float(row[k]) for k in ("mean", "stddev", "min", "max", "median")]
        if valid.size == 0:
            assert all(np.isnan(got)), name
            continue
        want = [valid.mean(), valid.std(), valid.min(), valid.max(), np.median(valid)]
        assert got == pytest.approx(want, rel=1e-7, abs=1e-9), name


def test_pixstats_reports_cfitsio_errors_with_the_file_name(tmp_path, night):
    root, _, _ = night
    folder = tmp_path / "reduced" / NIGHT
    folder.mkdir(parents=True)
    shutil.copy(root / "reduced" / NIGHT / "b_float_odd.fits", folder / "good.fits")
    truncate(root / "reduced" / NIGHT / "a_float_nan.fits", folder / "cut.fits", 2880 + 100)
    out = run("pixstats", tmp_path)
    assert out.returncode == 1
    assert re.search(r"pixstats: error: \S*/cut\.fits: cfitsio status \d+: ", out.stderr)
    assert "good.fits" not in out.stderr
    assert [r["file"] for r in read_csv(output(tmp_path, "pixstats"))] == ["good.fits"]


# --- obslog (Perl) ------------------------------------------------------------------------------

def test_obslog_lists_science_frames_in_time_order_with_exposure_totals(night):
    root, raw, _ = night
    assert run("header-summary", root).returncode == 0
    out = run("obslog", root)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    path = output(root, "obslog")
    assert_written_cleanly(path)
    text = path.read_text()
    frames_part, totals_part = text.split("\nExposure time per target and filter\n")

    science = {n: h for n, h in headers(raw).items() if h["IMAGETYP"] == "OBJECT"}
    lines = frames_part.split("\n\n", 1)[1].strip().splitlines()
    assert lines[0].split() == ["DATE-OBS", "OBJECT", "FILTER", "EXPTIME", "FILE"]
    logged = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    assert sorted(f[-1] for f in logged) == sorted(science)
    assert [f[0] for f in logged] == sorted(h["DATE-OBS"] for h in science.values())

    want = collections.defaultdict(float)
    for h in science.values():
        want[(h["OBJECT"], h["FILTER"])] += h["EXPTIME"]
    got = {}
    for line in totals_part.strip().splitlines()[1:]:
        fields = re.split(r"\s{2,}", line.strip())
        if fields[0] == "TOTAL":
            total_frames, total = int(fields[1]), float(fields[2])
        else:
            got[(fields[0], fields[1])] = float(fields[3])
    assert got == pytest.approx(dict(want))
    assert (total_frames, total) == (len(science), pytest.approx(sum(h["EXPTIME"] for h in science.values())))


def test_obslog_reads_quoted_csv_fields_and_leaves_out_unreadable_files(tmp_path):
    """Python's csv quotes a value holding a comma or a quote; obslog (Perl, no CSV module)
    must read it back whole."""
    table = output(tmp_path, "header-summary")
    table.parent.mkdir(parents=True)
    table.write_text(
        "file,hdu,IMAGETYP,OBJECT,FILTER,EXPTIME,DATE-OBS,NAXIS1,NAXIS2,error\n"
        'a.fits,0,Light Frame,"Comet ""X"", tail",V,10.5,2026-11-25T03:00:00,10,10,\n'
        'b.fits,,,,,,,,,"OSError: Header missing END card, at 2880"\n'
        "c.fits,0,BIAS,bias,,0.0,2026-11-24T15:00:00,10,10,\n"
        "d.fits,0,OBJECT,M1,R,20,2026-11-25T01:00:00,10,10,\n")
    out = run("obslog", tmp_path)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    text = output(tmp_path, "obslog").read_text()
    assert "2 science frames" in text and "1 unreadable" in text
    frames = [re.split(r"\s{2,}", line) for line in text.splitlines() if line.endswith(".fits")]
    assert frames == [["2026-11-25T01:00:00", "M1", "R", "20", "d.fits"],
                      ["2026-11-25T03:00:00", 'Comet "X", tail', "V", "10.5", "a.fits"]]
    assert re.search(r'^Comet "X", tail\s+V\s+1\s+10\.5$', text, re.M)
    assert re.search(r"^TOTAL\s+2\s+30\.5$", text, re.M)
