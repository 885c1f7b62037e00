"""Header extraction on real files from other observatories: nothing special-cased by name."""
import os

import numpy as np
import pytest
from astropy.io import fits

from downlink import StepError
from downlink.fitsmeta import describe, header_cards, json_value, normalise_imagetyp, parse_date_obs, verify_fits


def real(real_fits, name):
    return os.path.join(real_fits, name)


def test_every_real_file_is_described_or_rejected_with_a_reason(real_fits):
    for name in sorted(os.listdir(real_fits)):
        if not name.endswith((".fits", ".fit", ".fz")):
            continue
        path = real(real_fits, name)
        if "corrupt" in name:
            with pytest.raises(StepError, match="END card"):
                verify_fits(path, os.path.getsize(path))
            continue
        verify_fits(path, os.path.getsize(path))
        row = describe(path)
        assert row["n_ext"] >= 1 and isinstance(row["header"], list)


def test_old_ddmmyy_date_is_normalised_with_a_note(real_fits):
    row = describe(real(real_fits, "hst_wfpc2_test0.fits"))
    assert row["date_obs"].isoformat().startswith("1994-05-19T")
    assert any("dd/mm/yy" in n for n in row["notes"])
    assert row["n_ext"] == 5


def test_missing_date_is_left_empty_with_a_note(real_fits):
    row = describe(real(real_fits, "2mass_gc_2mass_k.fits"))
    assert row["date_obs"] is None and row["mjd"] is None
    assert any("left empty" in n for n in row["notes"])
    assert row["coord_source"] == "wcs"


def test_date_only_in_an_extension_is_found(real_fits):
    row = describe(real(real_fits, "chandra_acis_events_chandra_time.fits"))
    assert row["date_obs"].year == 2016 and row["instrument"] == "ACIS"


def test_compressed_file_uses_its_decompressed_header_and_wcs(real_fits):
    row = describe(real(real_fits, "decam_c4d_130105_065255_ooi_r_a1-N15.fits.fz"))
    assert row["instrument"] == "DECam" and row["imagetyp"] == "object"
    assert row["coord_source"] == "wcs" and 120 < row["ra"] < 122


def test_sexagesimal_pointing_keywords(real_fits):
    row = describe(real(real_fits, "lco1m_sinistro_raw_mef.fits"))
    assert row["coord_source"] == "keywords" and row["n_ext"] == 5 and row["naxis1"] > 0


def test_date_without_time_takes_the_time_keyword(real_fits):
    row = describe(real(real_fits, "saao1m_ste3_a8280271_object.fits"))
    assert row["date_obs"].hour == 0 and row["date_obs"].minute == 57
    assert any("time of day from UT" in n for n in row["notes"])


def test_truncated_file_is_detected(tmp_path):
    path = tmp_path / "t.fits"
    fits.PrimaryHDU(np.zeros((100, 100), dtype=np.float32)).writeto(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2880])
    with pytest.raises(StepError, match="truncated"):
        verify_fits(str(path), os.path.getsize(path))


def test_headers_become_json_safe():
    h = fits.Header()
    h["A"] = None  # an undefined value
    h["B"] = True
    h["HISTORY"] = "one"
    h["HISTORY"] = "two"
    cards = header_cards(h)
    assert cards["A"] is None and cards["B"] is True
    assert json_value("x\x00y") == "xy"  # jsonb refuses NUL; read-in headers can carry them
    assert json_value(np.float32("inf")) == "inf"
    assert cards["HISTORY"] == ["one", "two"]


@pytest.mark.parametrize("raw,kind", [("Bias Frame", "bias"), ("ZERO", "bias"), ("Dark Frame", "dark"),
                                      ("SKYFLAT", "flat"), ("Light Frame", "object"), ("EXPOSE", "object"),
                                      ("EXT", "other"), (None, None)])
def test_image_types_are_normalised(raw, kind):
    assert normalise_imagetyp(raw) == kind


def test_unreadable_date_is_not_guessed():
    notes = []
    assert parse_date_obs([fits.Header({"DATE-OBS": "yesterday"})], notes) is None
    assert any("unreadable: not an ISO 8601 date" in n for n in notes) and len(notes) == 1
