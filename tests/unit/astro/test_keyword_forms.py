"""Every date and position keyword form the indexer reads, one synthetic header each, checked
against astropy.time / astropy.coordinates called directly here."""
import gzip
import os

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import FK4, FK5, BarycentricMeanEcliptic, Galactic, SkyCoord
from astropy.io import fits
from astropy.time import Time, TimeDelta

from downlink import StepError
from downlink.fitsmeta import describe, verify_fits


def write(tmp_path, cards, ext_cards=None, data=True, name="f.fits"):
    hdu = fits.PrimaryHDU(np.zeros((8, 10), np.float32) if data else None)
    for key, value in cards.items():
        hdu.header[key] = value
    hdul = fits.HDUList([hdu])
    if ext_cards is not None:
        ext = fits.ImageHDU(np.zeros((8, 10), np.float32))
        for key, value in ext_cards.items():
            ext.header[key] = value
        hdul.append(ext)
    path = tmp_path / name
    hdul.writeto(path)
    return str(path)


def utc(text, scale="utc"):
    return Time(text, format="isot", scale=scale).utc.to_datetime(timezone=__import__("datetime").timezone.utc)


def date_notes(row):
    return [n for n in row["notes"] if n.startswith(("date_obs", "no usable date", "no DATE-OBS"))]


@pytest.mark.parametrize("cards,expected", [
    ({"DATE-OBS": "2009-05-02T00:40:13.625Z"}, "2009-05-02T00:40:13.625"),   # trailing Z, as MAST writes it
    ({"DATE-OBS": "2009-05-02T00:40:13.625"}, "2009-05-02T00:40:13.625"),
    ({"DATE-OBS": "2009-05-02T00:40:13"}, "2009-05-02T00:40:13"),
    ({"DATE-OBS": "2009-05-02T00:40:13Z"}, "2009-05-02T00:40:13"),
    ({"DATE-OBS": "2009-05-02", "TIME-OBS": "00:40:13.5"}, "2009-05-02T00:40:13.5"),
    ({"DATE-OBS": "2009-05-02", "UT": "00:40:13"}, "2009-05-02T00:40:13"),
    ({"DATE-OBS": "2009-05-02", "UTC-OBS": "00:40:13"}, "2009-05-02T00:40:13"),
    ({"DATE-OBS": "19/05/94", "TIME-OBS": "15:41:16"}, "1994-05-19T15:41:16"),  # dd/mm/yy: always 19yy
    ({"DATE_OBS": "2011-02-14T23:59:30.013Z"}, "2011-02-14T23:59:30.013"),
    ({"DATE-BEG": "2020-01-01T01:02:03"}, "2020-01-01T01:02:03"),
    ({"MJD-OBS": 55000.25}, Time(55000.25, format="mjd", scale="utc").isot),
    ({"MJD-BEG": 55000.5}, Time(55000.5, format="mjd", scale="utc").isot),
    ({"JD": 2455000.75}, Time(2455000.75, format="jd", scale="utc").isot),
])
def test_date_forms(tmp_path, cards, expected):
    row = describe(write(tmp_path, cards))
    assert row["date_obs"] == utc(expected) and row["date_precision"] == "time"
    assert len(date_notes(row)) == 1, row["notes"]


def test_date_in_timesys_tt_is_stored_as_utc(tmp_path):
    row = describe(write(tmp_path, {"DATE-OBS": "2016-01-26T17:58:29", "TIMESYS": "TT"}))
    assert row["date_obs"] == utc("2016-01-26T17:58:29", "tt")  # 69.184 s earlier in UTC


def test_tstart_counts_from_mjdref_in_timesys(tmp_path):
    row = describe(write(tmp_path, {"TSTART": 1000.0, "TSTOP": 1100.0, "MJDREF": 50814.0, "TIMESYS": "TT"}))
    start = Time(50814.0, format="mjd", scale="tt") + TimeDelta(1000.0 * u.s)
    assert row["date_obs"] == start.utc.to_datetime(timezone=row["date_obs"].tzinfo)
    end = Time(50814.0, format="mjd", scale="tt") + TimeDelta(1100.0 * u.s)
    assert row["date_end"] == end.utc.to_datetime(timezone=row["date_obs"].tzinfo)


def test_tstart_with_mjdrefi_and_mjdreff(tmp_path):
    row = describe(write(tmp_path, {"TSTART": 86400.0, "MJDREFI": 51910, "MJDREFF": 7.428703703703703e-4, "TIMESYS": "TT"}))
    start = Time(51910 + 7.428703703703703e-4, format="mjd", scale="tt") + TimeDelta(86400.0 * u.s)
    assert row["date_obs"] == start.utc.to_datetime(timezone=row["date_obs"].tzinfo)


def test_date_only_without_time_is_a_date_whose_time_is_unknown(tmp_path):
    row = describe(write(tmp_path, {"DATE-OBS": "1998-02-24"}))
    assert row["date_obs"] == utc("1998-02-24T00:00:00") and row["date_precision"] == "day"
    assert date_notes(row) and "time of day unknown" in date_notes(row)[0] and len(date_notes(row)) == 1


def test_date_only_takes_its_time_from_mjd_obs_of_the_same_day_in_one_note(tmp_path):
    row = describe(write(tmp_path, {"DATE-OBS": "2005-07-31", "UTC-OBS": "garbage", "MJD-OBS": 53582.25}))
    assert row["date_obs"] == Time(53582.25, format="mjd").to_datetime(timezone=row["date_obs"].tzinfo)
    assert row["date_precision"] == "time" and len(date_notes(row)) == 1, row["notes"]
    assert "MJD-OBS" in date_notes(row)[0] and "2005-07-31" in date_notes(row)[0]


def test_date_keys_found_in_an_extension(tmp_path):
    row = describe(write(tmp_path, {}, {"DATE-OBS": "2001-02-03", "TIME-OBS": "04:05:06"}, data=False))
    assert row["date_obs"] == utc("2001-02-03T04:05:06")


def test_date_end_and_exposure(tmp_path):
    row = describe(write(tmp_path, {"DATE-OBS": "2001-02-03T04:05:06", "DATE-END": "2001-02-03T04:15:06"}))
    assert row["date_end"] == utc("2001-02-03T04:15:06")
    row = describe(write(tmp_path, {"DATE-OBS": "2001-02-03T04:05:06", "EXPTIME": 30.0}, name="g.fits"))
    assert row["date_end"] == utc("2001-02-03T04:05:36")


def test_unreadable_date_is_one_note_not_a_guess(tmp_path):
    row = describe(write(tmp_path, {"DATE-OBS": "yesterday"}))
    assert row["date_obs"] is None and len(date_notes(row)) == 1 and "yesterday" in date_notes(row)[0]


def sky(row):
    return SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)


def wcs_cards(ctype1, ctype2, lon, lat, **more):
    return {"CTYPE1": ctype1, "CTYPE2": ctype2, "CRVAL1": lon, "CRVAL2": lat, "CRPIX1": 5.5, "CRPIX2": 4.5,
            "CDELT1": -0.001, "CDELT2": 0.001, **more}


@pytest.mark.parametrize("cards,truth,native", [
    (wcs_cards("GLON-CAR", "GLAT-CAR", 0.0, 0.0), SkyCoord(0 * u.deg, 0 * u.deg, frame=Galactic), "galactic"),
    (wcs_cards("RA---TAN", "DEC--TAN", 10.0, 41.0, EQUINOX=1950.0),
     SkyCoord(10 * u.deg, 41 * u.deg, frame=FK4(equinox="B1950")), "fk4 B1950.000"),
    (wcs_cards("RA---TAN", "DEC--TAN", 10.0, 41.0, RADESYS="FK5", EQUINOX=2000.0),
     SkyCoord(10 * u.deg, 41 * u.deg, frame=FK5(equinox="J2000")), "fk5 J2000.000"),
    (wcs_cards("RA---TAN", "DEC--TAN", 10.0, 41.0, RADESYS="ICRS"), SkyCoord(10 * u.deg, 41 * u.deg), "icrs"),
])
def test_wcs_frames_to_icrs(tmp_path, cards, truth, native):
    row = describe(write(tmp_path, cards))
    assert sky(row).separation(truth.icrs).arcsec < 1.0 and row["coord_source"] == "wcs"
    assert row["native_frame"] == native
    assert row["s_region"].startswith("{(") and row["s_fov"] == pytest.approx(np.hypot(10, 8) * 0.001, rel=0.05)


def test_ecliptic_wcs_to_icrs(tmp_path):
    row = describe(write(tmp_path, wcs_cards("ELON-TAN", "ELAT-TAN", 100.0, 10.0)))
    assert row["coord_source"] == "wcs" and row["native_frame"] == "barycentricmeanecliptic J2000.000"
    # FITS ecliptic axes: the mean ecliptic and equinox (J2000 by default), a rotation of the equator
    truth = SkyCoord(100 * u.deg, 10 * u.deg, frame=BarycentricMeanEcliptic(equinox="J2000"))
    assert sky(row).separation(truth.icrs).arcsec < 1.0


@pytest.mark.parametrize("ctypes", [("HPLN-TAN", "HPLT-TAN"), ("WAVE", "LINEAR"), ("LINEAR", "LINEAR"),
                                    ("PIXEL", "PIXEL"), ("solar-x", "solar-y")])
def test_non_celestial_wcs_never_fills_ra_dec(tmp_path, ctypes):
    row = describe(write(tmp_path, wcs_cards(*ctypes, 0.0, 0.0)))
    assert row["ra"] is None and row["dec"] is None and row["s_region"] is None
    assert any("not on the sky" in n for n in row["notes"]), row["notes"]


@pytest.mark.parametrize("cards,truth", [
    ({"RA": 10.684708, "DEC": 41.26875}, SkyCoord(10.684708 * u.deg, 41.26875 * u.deg)),
    ({"RA": "00:42:44.33", "DEC": "+41:16:07.5"}, SkyCoord("00:42:44.33 +41:16:07.5", unit=(u.hourangle, u.deg))),
    ({"OBJCTRA": "00 42 44.33", "OBJCTDEC": "+41 16 07.5"}, SkyCoord("00 42 44.33 +41 16 07.5", unit=(u.hourangle, u.deg))),
    ({"RA_TARG": 10.684708, "DEC_TARG": 41.26875, "EQUINOX": 2000.0},
     SkyCoord(10.684708 * u.deg, 41.26875 * u.deg, frame=FK5(equinox="J2000"))),
    ({"RA_OBJ": 10.0, "DEC_OBJ": 41.0, "RADESYS": "FK4", "EQUINOX": 1950.0},
     SkyCoord(10 * u.deg, 41 * u.deg, frame=FK4(equinox="B1950"))),
    ({"RA_NOM": 10.0, "DEC_NOM": -41.0, "RADESYS": "ICRS"}, SkyCoord(10 * u.deg, -41 * u.deg)),
    ({"OBJCTRA": "00 40 00", "OBJCTDEC": "+41 00 00", "EPOCH": 1950.0},
     SkyCoord("00 40 00 +41 00 00", unit=(u.hourangle, u.deg), frame=FK4(equinox="B1950"))),
])
def test_pointing_keywords_with_their_frame(tmp_path, cards, truth):
    row = describe(write(tmp_path, cards))
    assert row["coord_source"] == "keywords" and sky(row).separation(truth.icrs).arcsec < 1.0, row["notes"]


def test_crval_without_an_image_wcs_is_a_pointing(tmp_path):
    # an events table's header: image-style CTYPE/CRVAL but no image
    row = describe(write(tmp_path, {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 85.88, "CRVAL2": 69.27,
                                    "EQUINOX": 2000.0}, data=False))
    truth = SkyCoord(85.88 * u.deg, 69.27 * u.deg, frame=FK5(equinox="J2000")).icrs
    assert row["coord_source"] == "keywords" and sky(row).separation(truth).arcsec < 1.0


def test_pointing_keywords_in_an_extension(tmp_path):
    row = describe(write(tmp_path, {}, {"RA_TARG": 150.0, "DEC_TARG": 2.0, "RADESYS": "ICRS"}, data=False))
    assert sky(row).separation(SkyCoord(150 * u.deg, 2 * u.deg)).arcsec < 1.0


def test_no_position_at_all_is_empty_with_a_note(tmp_path):
    row = describe(write(tmp_path, {"OBJECT": "dome"}))
    assert row["ra"] is None and any("ra/dec left empty" in n for n in row["notes"])


def skew_file(tmp_path):
    """A DSS plate scan's defect: a card whose value holds two numbers."""
    path = write(tmp_path, {"DATE-OBS": "1990-12-22T13:49:00", "OBJECT": "HorseHead", "SKEW": 1.0}, name="skew.fits")
    raw = open(path, "rb").read()
    card = next(raw[i:i + 80] for i in range(0, len(raw), 80) if raw[i:i + 8] == b"SKEW    ")
    bad = b"SKEW    =        0.0000000000   -0.0000000000".ljust(80)
    open(path, "wb").write(raw.replace(card, bad))
    return path


def test_unparsable_card_is_kept_raw_with_a_note_and_the_file_indexed(tmp_path):
    path = skew_file(tmp_path)
    verify_fits(path, os.path.getsize(path))
    row = describe(path)
    assert row["object"] == "HorseHead" and row["date_obs"] == utc("1990-12-22T13:49:00")
    assert row["header"][0]["cards"]["SKEW"].startswith("SKEW    =        0.0000000000   -0.0000000000")
    assert any("card SKEW unparsable" in n for n in row["notes"])


def test_gzip_file_is_verified_and_described_as_astropy_opens_it(tmp_path):
    plain = write(tmp_path, {"DATE-OBS": "2001-02-03T04:05:06", **wcs_cards("RA---TAN", "DEC--TAN", 10.0, 41.0)})
    packed = tmp_path / "f.fits.gz"
    packed.write_bytes(gzip.compress(open(plain, "rb").read()))
    verify_fits(str(packed), os.path.getsize(packed))
    assert describe(str(packed))["ra"] == pytest.approx(describe(plain)["ra"])
    cut = tmp_path / "cut.fits.gz"
    cut.write_bytes(packed.read_bytes()[:-40])
    with pytest.raises(StepError, match="truncated or corrupt gzip"):
        verify_fits(str(cut), os.path.getsize(cut))


def test_tile_compressed_file_is_verified_and_described(tmp_path):
    header = fits.Header(wcs_cards("RA---TAN", "DEC--TAN", 10.0, 41.0))
    header["DATE-OBS"] = "2001-02-03T04:05:06"
    path = tmp_path / "c.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.arange(80, dtype=np.int32).reshape(8, 10), header,
                                                       compression_type="RICE_1")]).writeto(path)
    verify_fits(str(path), os.path.getsize(path))
    row = describe(str(path))
    assert row["coord_source"] == "wcs" and row["naxis1"] == 10 and row["date_obs"] == utc("2001-02-03T04:05:06")


def test_describe_cli_prints_what_would_be_stored_or_why_not(tmp_path):
    import json
    import subprocess

    good = write(tmp_path, {"DATE-OBS": "2001-02-03T04:05:06", **wcs_cards("GLON-CAR", "GLAT-CAR", 0.0, 0.0)})
    bad = tmp_path / "page.fits"
    bad.write_text("<html>500 Internal Server Error</html>")
    out = subprocess.run(["downlink", "describe", good, str(bad)], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr  # one file would be quarantined
    shown = json.loads(out.stdout)
    assert shown[0]["indexed"] and shown[0]["row"]["native_frame"] == "galactic"
    assert shown[0]["row"]["date_obs"] == "2001-02-03T04:05:06+00:00" and shown[0]["notes"]
    assert shown[0]["row"]["ra"] == pytest.approx(describe(good)["ra"])
    assert not shown[1]["indexed"] and shown[1]["stage"] == "download" and "not a readable FITS" in shown[1]["reason"]
