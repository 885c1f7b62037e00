"""Source extraction QC and the report page (no database)."""
import datetime

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.datasets import make_gaussian_sources_image

from downlink import report, sources


def test_qc_limits_come_from_the_environment():
    lim = sources.limits({"DOWNLINK_QC_MIN_SOURCES": "12", "DOWNLINK_QC_MAX_SKY": ""})
    assert lim["min_sources"] == 12 and lim["max_sky"] == 20000 and lim["max_fwhm_arcsec"] == 3.0


def test_judge_names_each_breach():
    lim = {"min_sources": 5, "max_fwhm_arcsec": 2.0, "max_sky": 100}
    ok, reasons = sources.judge({"n_sources": 3, "fwhm_pix": 5.0, "fwhm_arcsec": 3.0, "sky": 500}, lim)
    assert not ok and len(reasons) == 3
    assert sources.judge({"n_sources": 30, "fwhm_pix": 3.0, "fwhm_arcsec": 1.8, "sky": 50}, lim) == (True, [])


@pytest.fixture
def star_frame(tmp_path):
    """A 128x128 frame in electrons with 25 stars of FWHM 3 pixels, and a TAN WCS at 0.6"/pixel."""
    rng = np.random.default_rng(1)
    n = 25
    table = Table({"flux": rng.uniform(5e3, 5e4, n), "x_mean": rng.uniform(10, 118, n),
                   "y_mean": rng.uniform(10, 118, n), "x_stddev": np.full(n, 3 / 2.3548),
                   "y_stddev": np.full(n, 3 / 2.3548), "theta": np.zeros(n)})
    data = make_gaussian_sources_image((128, 128), table) + 1000.0
    data = rng.poisson(data).astype(np.float32)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [10.0, 41.0]
    wcs.wcs.crpix = [64.5, 64.5]
    wcs.wcs.cd = [[-0.6 / 3600, 0], [0, 0.6 / 3600]]
    path = tmp_path / "frame.fits"
    fits.PrimaryHDU(data, header=wcs.to_header()).writeto(path)
    return path, n


def test_sextractor_finds_the_stars_and_their_fwhm(star_frame, tmp_path):
    path, n = star_frame
    table = sources.extract(str(path), str(tmp_path / "cat" / "frame.cat"))
    qc = sources.measure(table, sources.pixel_scale_arcsec(fits.getheader(path)))
    assert abs(qc["n_sources"] - n) <= 4
    assert qc["fwhm_pix"] == pytest.approx(3.0, rel=0.25)
    assert qc["fwhm_arcsec"] == pytest.approx(1.8, rel=0.25)
    assert qc["sky"] == pytest.approx(1000, rel=0.05)
    assert (tmp_path / "cat" / "frame.cat").exists()


def test_report_renders_an_empty_night_and_escapes_text():
    empty = {"counts": [], "quarantine": [{"filename": "<bad>.fits", "stage": "download", "reason": "x & y"}],
             "masters": [], "frames": [], "diagnostics": []}
    page = report.render(datetime.date(2026, 11, 24), empty)
    assert "Night 2026-11-24" in page and "&lt;bad&gt;.fits" in page and "x &amp; y" in page
    assert "<bad>" not in page


def test_plots_are_png(tmp_path):
    frame = {"date_obs": datetime.datetime(2026, 11, 24, 21, tzinfo=datetime.timezone.utc), "filter": "V",
             "fwhm_arcsec": 1.2, "sky": 1500.0}
    report.plot_seeing_sky([frame], str(tmp_path / "s.png"))
    report.plot_thumbnails([], str(tmp_path / "t.png"))
    for name in ("s.png", "t.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
