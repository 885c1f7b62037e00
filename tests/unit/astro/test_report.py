"""`downlink report`: the page, the plots and the summary without a database, and the step after
`sources` against a test database (make test-unit-astro starts one)."""
import datetime
import json

import matplotlib.image
import pytest

import synthetic_frames as synth
from downlink import cli, report, sources

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NIGHT = datetime.date(2031, 3, 15)
EMPTY = {"counts": [], "quarantine": [], "masters": [], "frames": [], "diagnostics": []}


def frame_row(name, hour, **values):
    row = {"filename": name, "object": "M31", "filter": "V", "exptime": 120.0, "airmass": 1.1,
           "date_obs": synth.start_time(NIGHT, hour), "path": f"reduced/{NIGHT}/{name}", "noise_raw": 40.0,
           "noise_reduced": 35.0, "notes": "", "npix": 16384, "mean": 1010.0, "midpt": 1000.0, "mode": 998.0,
           "stddev": 33.0, "min": 880.0, "max": 50000.0, "n_sources": 20, "fwhm_pix": 3.0, "fwhm_arcsec": 1.8,
           "sky": 1000.0, "qc_ok": True, "qc_reasons": ""}
    row.update(values)
    return row


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert matplotlib.image.imread(str(path)).ndim == 3  # decodes as an image


def test_an_empty_night_says_so():
    summary = report.summarise(NIGHT, EMPTY)
    page = report.render(NIGHT, EMPTY, summary, sources.limits({}))
    assert "Night 2031-03-15" in page and "No frames were reduced this night." in page
    assert "No files were quarantined." in page and "No QC measurements for this night." in page
    assert summary["reduced"] == 0 and summary["qc_failed"] == [] and summary["median_seeing_arcsec"] is None


def test_text_from_the_database_is_escaped():
    data = dict(EMPTY, quarantine=[{"filename": "<script>x</script>.fits", "stage": "download", "reason": "a & b"}])
    page = report.render(NIGHT, data, report.summarise(NIGHT, data), sources.limits({}))
    assert "&lt;script&gt;x&lt;/script&gt;.fits" in page and "a &amp; b" in page and "<script>" not in page


def test_a_hostile_fits_header_value_is_escaped_everywhere_it_shows():
    # OBJECT comes straight from a FITS header: the template is autoescaped, so it stays text.
    hostile = "<script>alert(1)</script>"
    frames = [frame_row("a.fits", 22, object=hostile, notes=f"'{hostile}'", qc_ok=False, qc_reasons=f'"{hostile}"')]
    data = dict(EMPTY, frames=frames, counts=[{"imagetyp": hostile, "n": 1}],
                diagnostics=[{"check_name": hostile, "ok": False, "message": hostile}])
    page = report.render(NIGHT, data, report.summarise(NIGHT, data), sources.limits({}))
    assert "<script" not in page and "alert(1)</" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 6  # type, object, notes, why not, check, result
    assert "&#39;&lt;script&gt;" in page and "&#34;&lt;script&gt;" in page  # quotes are escaped too


def test_qc_failures_are_highlighted_and_counted():
    frames = [frame_row("a.fits", 22), frame_row("b.fits", 23, qc_ok=False, qc_reasons="3 sources < 5")]
    data = dict(EMPTY, frames=frames, counts=[{"imagetyp": "object", "n": 2}],
                diagnostics=[{"check_name": "disk", "ok": False, "message": "full"}])
    summary = report.summarise(NIGHT, data)
    page = report.render(NIGHT, data, summary, sources.limits({}))
    assert summary["qc_failed"] == ["b.fits"] and summary["qc_measured"] == 2
    assert summary["observations"] == {"object": 2} and summary["diagnostics_failed"] == ["disk"]
    assert summary["median_seeing_arcsec"] == 1.8
    assert page.count("<tr class=bad>") == 2  # the failed QC row and the failed diagnostic
    assert "3 sources &lt; 5" in page and "2031-03-15 22:00:00" in page


def test_plots_are_pngs_with_and_without_frames(data_root, tmp_path):
    name = "a.fits"
    synth.reduced_frame(str(data_root / "reduced" / str(NIGHT) / name), 10)
    frames = [frame_row(name, 22), frame_row("gone.fits", 23, qc_ok=False)]
    lim = sources.limits({})
    report.plot_seeing_sky(frames, str(tmp_path / "s.png"), lim)
    report.plot_thumbnails(frames, str(tmp_path / "t.png"))
    report.plot_seeing_sky([], str(tmp_path / "s0.png"), lim)
    report.plot_thumbnails([], str(tmp_path / "t0.png"))
    for png in ("s.png", "t.png", "s0.png", "t0.png"):
        assert_png(tmp_path / png)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == ["s.png", "s0.png", "t.png", "t0.png"]


def test_report_after_sources_on_a_small_night(data_root, capsys):
    with synth.archive_connection() as conn:
        synth.forget_night(conn, NIGHT)
        for hour, name in ((21, "m31_1.fits"), (23, "m31_2.fits")):
            synth.add_frame(conn, str(data_root), NIGHT, name, synth.start_time(NIGHT, hour), 20, seed=hour)
        conn.execute("INSERT INTO quarantine (night, filename, stage, reason) VALUES (%s, 'bad<1>.fits', 'download',"
                     " 'sha256 mismatch')", (NIGHT,))
    try:
        assert cli.main(["sources", "--night", str(NIGHT)]) == 0
        assert cli.main(["report", "--night", str(NIGHT)]) == 0
        assert cli.main(["report", "--night", str(NIGHT)]) == 0
    finally:
        with synth.archive_connection() as conn:
            synth.forget_night(conn, NIGHT)
    folder = data_root / "reports" / str(NIGHT)
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "seeing_sky.png", "summary.json", "thumbnails.png"]
    page = (folder / "index.html").read_text()
    assert 'src="seeing_sky.png"' in page and 'src="thumbnails.png"' in page and "bad&lt;1&gt;.fits" in page
    assert "m31_1.fits" in page and "dark from 2026-11-23" in page
    assert_png(folder / "seeing_sky.png")
    assert_png(folder / "thumbnails.png")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["observations"] == {"object": 2} and summary["reduced"] == 2 and summary["qc_measured"] == 2
    assert summary["quarantined"] == 1 and summary["median_seeing_arcsec"] == pytest.approx(1.8, rel=0.15)


def test_report_on_a_night_with_nothing(data_root):
    night = "2031-03-16"
    with synth.archive_connection() as conn:
        synth.forget_night(conn, night)
    assert cli.main(["report", "--night", night]) == 0
    folder = data_root / "reports" / night
    assert "No frames were reduced this night." in (folder / "index.html").read_text()
    assert_png(folder / "seeing_sky.png")
    assert_png(folder / "thumbnails.png")
