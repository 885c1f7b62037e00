"""`downlink sources`: QC logic without a database, SExtractor on a synthetic frame, and the step
against a test database (make test-unit-astro starts one)."""
import datetime
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import synthetic_frames as synth
from downlink import StepError, cli, sources

LIMITS = {"min_sources": 5, "max_fwhm_arcsec": 2.0, "max_sky": 100.0}


def test_qc_limits_default_and_come_from_the_environment():
    assert sources.limits({}) == {"min_sources": 5, "max_fwhm_arcsec": 3.0, "max_sky": 10000.0}
    lim = sources.limits({"DOWNLINK_QC_MIN_SOURCES": "12", "DOWNLINK_QC_MAX_FWHM_ARCSEC": "2.5",
                          "DOWNLINK_QC_MAX_SKY": ""})
    assert lim == {"min_sources": 12, "max_fwhm_arcsec": 2.5, "max_sky": 10000.0}


def test_a_bad_limit_names_the_variable():
    with pytest.raises(StepError, match="DOWNLINK_QC_MAX_SKY"):
        sources.limits({"DOWNLINK_QC_MAX_SKY": "bright"})


def test_judge_passes_a_good_frame_and_names_each_breach():
    good = {"n_sources": 30, "fwhm_pix": 3.0, "fwhm_arcsec": 1.8, "sky": 50.0}
    assert sources.judge(good, LIMITS) == (True, [])
    ok, reasons = sources.judge({"n_sources": 3, "fwhm_pix": 5.0, "fwhm_arcsec": 3.0, "sky": 500.0}, LIMITS)
    assert not ok and len(reasons) == 3
    assert any("3 sources" in r for r in reasons) and any("FWHM 3.00" in r for r in reasons)
    assert any("sky 500" in r for r in reasons)


def test_a_frame_whose_seeing_cannot_be_checked_fails():
    no_stars = {"n_sources": 8, "fwhm_pix": None, "fwhm_arcsec": None, "sky": 50.0}
    no_wcs = {"n_sources": 8, "fwhm_pix": 3.0, "fwhm_arcsec": None, "sky": 50.0}
    assert sources.judge(no_stars, LIMITS) == (False, ["no star-like sources to measure the seeing"])
    assert sources.judge(no_wcs, LIMITS) == (False, ["no celestial WCS: seeing not checked"])


def catalogue(rows):
    return Table(rows=rows or None, names=("FWHM_IMAGE", "FLAGS", "CLASS_STAR"), dtype=(float, int, float))


def test_fwhm_is_the_median_of_unflagged_star_like_sources():
    table = catalogue([(3.0, 0, 0.98), (3.2, 0, 0.95), (2.8, 0, 0.9),
                       (9.0, 4, 0.97),   # saturated
                       (8.0, 2, 0.96),   # blended
                       (7.0, 0, 0.05),   # a galaxy
                       (0.0, 0, 0.8)])   # no FWHM measured
    qc = sources.measure(table, 950.0, 0.6)
    assert qc == {"n_sources": 7, "fwhm_pix": 3.0, "fwhm_arcsec": pytest.approx(1.8), "sky": 950.0}


def test_no_star_like_sources_or_no_scale_leave_the_fwhm_empty():
    assert sources.measure(catalogue([(5.0, 0, 0.1)]), 10.0, 0.6)["fwhm_pix"] is None
    qc = sources.measure(catalogue([(3.0, 0, 0.9)]), 10.0, None)
    assert qc["fwhm_pix"] == 3.0 and qc["fwhm_arcsec"] is None
    empty = sources.measure(catalogue([]), 10.0, 0.6)
    assert empty["n_sources"] == 0 and empty["fwhm_pix"] is None and empty["sky"] == 10.0


def test_first_pass_seeing_falls_back_to_the_guess():
    assert sources.first_pass_seeing(catalogue([]), 0.6) == sources.SEEING_GUESS_ARCSEC
    assert sources.first_pass_seeing(catalogue([(4.0, 0, 0.1), (20.0, 4, 0.1)]), 0.5) == 2.0


def test_pixel_scale_and_saturation_from_the_header(tmp_path):
    header = fits.getheader(synth.reduced_frame(str(tmp_path / "f.fits"), 3))
    assert sources.pixel_scale_arcsec(header) == pytest.approx(synth.PIXEL_SCALE)
    assert sources.saturation_electrons(header) == pytest.approx(synth.SATURATE * synth.GAIN * 0.9)
    assert sources.pixel_scale_arcsec(fits.Header()) is None
    assert sources.saturation_electrons(fits.Header({"SATURATE": 65535})) is None


def test_sextractor_finds_the_stars_their_fwhm_and_the_sky(tmp_path):
    n = 20
    image = synth.reduced_frame(str(tmp_path / "frame.fits"), n, saturated=1)
    catalog = str(tmp_path / "catalogs" / "frame.cat")
    table, sky, scale = sources.extract(image, catalog)
    qc = sources.measure(table, sky, scale)
    assert abs(qc["n_sources"] - n) <= 2
    assert qc["fwhm_pix"] == pytest.approx(synth.FWHM_PIX, rel=0.15)
    assert qc["fwhm_arcsec"] == pytest.approx(synth.FWHM_PIX * synth.PIXEL_SCALE, rel=0.15)
    assert sky == pytest.approx(synth.SKY, rel=0.02)
    # The raw header's GAIN and SATURATE (ADU) must not override the electron settings.
    sex_header = sources.read_ldac(catalog)[1]
    assert sex_header["SEXGAIN"] == 1.0
    assert sex_header["SEXSATLV"] == pytest.approx(synth.SATURATE * synth.GAIN * 0.9, rel=1e-6)
    assert np.count_nonzero(table["FLAGS"] & 4) >= 1  # the clipped star is flagged as saturated
    assert os.listdir(tmp_path / "catalogs") == ["frame.cat"]  # no partial files left behind


def test_a_frame_without_saturate_is_measured(tmp_path):
    image = synth.reduced_frame(str(tmp_path / "frame.fits"), 10)
    fits.delval(image, "SATURATE")
    table, _, _ = sources.extract(image, str(tmp_path / "frame.cat"))
    assert len(table) >= 8
    assert sources.read_ldac(str(tmp_path / "frame.cat"))[1]["SEXSATLV"] == pytest.approx(sources.UNKNOWN_SATURATION)


def test_an_unreadable_frame_is_a_clear_error(tmp_path):
    with pytest.raises(StepError, match="missing.fits"):
        sources.extract(str(tmp_path / "missing.fits"), str(tmp_path / "out.cat"))


NIGHT = datetime.date(2031, 3, 14)


def test_step_records_one_qc_row_per_frame_and_reruns_cleanly(data_root, capsys):
    with synth.archive_connection() as conn:
        synth.forget_night(conn, NIGHT)
        good = synth.add_frame(conn, str(data_root), NIGHT, "good.fits", synth.start_time(NIGHT, 22), 20)
        sparse = synth.add_frame(conn, str(data_root), NIGHT, "sparse.fits", synth.start_time(NIGHT, 23), 3, seed=2)
    for _ in range(2):
        assert cli.main(["sources", "--night", str(NIGHT)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("good.fits:") for line in lines) == 2
    assert sum(line.startswith("sparse.fits:") for line in lines) == 2
    with synth.archive_connection() as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT reduced_id, n_sources, fwhm_arcsec, sky, qc_ok, qc_reasons, catalog_path FROM frame_qc"
            " WHERE reduced_id IN (%s, %s)", (good, sparse))}
        synth.forget_night(conn, NIGHT)
    assert len(rows) == 2
    n, fwhm, sky, ok, reasons, catalog = rows[good]
    assert abs(n - 20) <= 2 and fwhm == pytest.approx(1.8, rel=0.15) and sky == pytest.approx(1000, rel=0.02)
    assert ok and reasons == []
    assert catalog == f"catalogs/{NIGHT}/good.cat" and (data_root / catalog).is_file()
    n, _, _, ok, reasons, _ = rows[sparse]
    assert n <= 4 and not ok and any("sources < 5" in r for r in reasons)
    assert sorted(os.listdir(data_root / "catalogs" / str(NIGHT))) == ["good.cat", "sparse.cat"]


def test_a_bad_qc_setting_fails_the_sources_step_only(monkeypatch, capsys, tmp_path):
    from downlink import cli

    monkeypatch.setenv("DOWNLINK_QC_MAX_SKY", "bright")
    assert cli.main(["sources", "--night", "2026-11-24"]) == 1
    assert "downlink sources: error: DOWNLINK_QC_MAX_SKY='bright' is not a valid float" in capsys.readouterr().err
    # Steps that do not use it are not stopped by it (each reads only its own settings).
    assert cli.main(["make-manifest", str(tmp_path)]) == 0
