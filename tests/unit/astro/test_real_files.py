"""Every real file of ../shared/data/fits and ../shared/data/fits-more, indexed, each field compared
with what astropy itself says, computed here without the indexer's code: astropy.wcs +
astropy.coordinates for positions (to ICRS), astropy.time for dates. Which keys hold the truth for
each file is written below by hand from its header (PROVENANCE.md says what each exercises).
Positions must agree within 1 arcsec, dates exactly (to the microsecond).

Differences from a straight reading that are better answers (docs/observation-index.md):
- DATE-OBS is read in the file's TIMESYS (Chandra: TT), as the FITS standard says, and stored as UTC.
- Keyword pointings are in the frame their HDU's RADESYS/EQUINOX say (FK5 J2000 when only
  EQUINOX = 2000 is given), transformed to ICRS.
"""
import os
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from downlink import StepError, index
from downlink.fitsmeta import verify_fits

NIGHT = "2026-01-03"
# Refused at download (not complete, readable FITS), each for the reason given.
REFUSED = {
    "lco_ldac_test_catalog_corrupt.fits": "END card",
    "html_error_page_not_actually_fits.fits": "No SIMPLE card",
    "meudon_spectroheliograph_halpha_truncated.fts": "truncated: HDU 0 needs 4023360 bytes, the file has 3402",
}
# name: (where the position is, where the start of exposure is)
#   position: ("wcs", hdu) centre of that HDU's celestial WCS | ("keys", hdu, ra_key, dec_key) |
#             None: no position on the sky (with the native axes expected, if any)
#   date: (date key, hdu, ISO date it means, time-of-day key or None) | ("day", hdu, ISO date) | None
EXPECTED = {
    "2mass_gc_2mass_k.fits": (("wcs", 0), None),
    "chandra_acis_events_chandra_time.fits": (("keys", 1, "RA_TARG", "DEC_TARG"), ("DATE-OBS", 1, None, None)),
    "decam_c4d_130105_065255_ooi_r_a1-N15.fits.fz": (("wcs", 1), ("DATE-OBS", 0, None, None)),
    "dss_HorseHead.fits": (("wcs", 0), ("DATE-OBS", 0, None, None)),
    "eso_vlt_hierarch_fixed-1890.fits": ((None, "PIXEL/PIXEL"), ("DATE-OBS", 0, None, None)),
    "feder_apogee-alta_biastest1.fit": (("keys", 0, "OBJCTRA", "OBJCTDEC"), ("DATE-OBS", 0, None, None)),
    "feder_aspen-cg16m_flat_trimmed.fit": ((None, None), ("DATE-OBS", 0, None, None)),
    "feder_maximdl_6_18_light.fit": (("wcs", 0), ("DATE-OBS", 0, None, None)),
    "hst_wfpc2_test0.fits": (("wcs", 2), ("DATE-OBS", 0, "1994-05-19", "TIME-OBS")),  # HDU 1: CTYPE UNITLESS
    "lco1m_sinistro_raw_mef.fits": (("keys", 0, "RA", "DEC"), ("DATE-OBS", 0, None, None)),
    "saao1m_ste3_a8280271_object.fits": (("keys", 0, "RA", "DEC"), ("DATE-OBS", 0, "2013-07-13", "UT")),
    "aips_optical_ngc1316_comp_b1950.fits": (("wcs", 1), None),
    "bok_90prime_ksb_staticmask_ood_v1.fits.fz": (("wcs", 1), ("DATE-OBS", 0, None, None)),
    "chandra_hrci_hrcf24564_r0001_pha3.fits.gz": (("wcs", 3), ("DATE-OBS", 0, None, None)),
    "dfm16_sbig-st7_neon_dome_10s.fit": ((None, None), ("DATE-OBS", 0, None, None)),
    "dss_poss1_m1_ned_cutout.fits": (("wcs", 0), ("DATE-OBS", 0, "1951-11-08", "UT")),
    "ecallisto_bir_20110922_051500_01.fit.gz": ((None, "Time [UT]/Frequency [MHz]"), ("DATE-OBS", 0, "2011-09-22", "TIME-OBS")),
    "effelsberg_magpis_g10.5_glon.fits": (("wcs", 0), None),
    "feder_apogee-alta_darktest3.fit": (("keys", 0, "OBJCTRA", "OBJCTDEC"), ("DATE-OBS", 0, None, None)),
    "hst_stis_o4er06llq_raw.fits": (("wcs", 1), ("DATE-OBS", 1, None, "TIME-OBS")),
    "hst_stis_ocui04xeq_spt.fits": (("keys", 0, "RA_TARG", "DEC_TARG"), None),
    # IUE writes one date and position per aperture (LDATEOBS/SDATEOBS, LRA/SRA): which one this
    # spectrum is depends on the aperture; nothing generic says which, so neither is taken.
    "iue_swp_swp02283.mxlo": ((None, None), None),
    # MagE's time of day is in a non-standard UT-TIME card: a date whose time is unknown.
    "magellan_mage_um669_spec.fits": (("keys", 0, "RA", "DEC"), ("day", 0, "2009-12-23")),
    "rosat_pspc_events_iter_c.fit": (("keys", 1, "CRVAL1", "CRVAL2"), ("DATE-OBS", 1, "1993-03-08", "TIME-OBS")),
    "rosat_rass_allsky_glon_ait.fits": (("wcs", 0), None),
    "sdo_eve_esp_l1_2011046_truncated.fits": ((None, None), ("DATE_OBS", 1, None, None)),
    "soho_mdi_fd_ic_6h_01d.5871.fits": ((None, "solar-x/solar-y"), ("DATE-OBS", 0, None, None)),
    "spitzer_irs_irsx_2d_img.fits": (("wcs", 0), ("DATE_OBS", 0, None, None)),
    "stereo_secchi_euvi_l0_a.fits": ((None, "HPLN-TAN/HPLT-TAN"), ("DATE-OBS", 0, None, None)),
    "swope_direct4k_didymos_stub.fits": (("wcs", 0), ("DATE-OBS", 0, None, None)),
}


def all_files(real_fits, real_fits_more):
    return sorted(os.path.join(d, n) for d in (real_fits, real_fits_more) for n in os.listdir(d) if n != "PROVENANCE.md")


def frame_of(header):
    """The FITS standard's rule (WCS paper II), written here independently of the indexer."""
    radesys = str(header.get("RADESYS", header.get("RADECSYS", ""))).strip().lower()
    equinox = header.get("EQUINOX", header.get("EPOCH"))
    if radesys == "icrs" or (not radesys and equinox is None):
        return {"frame": "icrs"}
    if radesys == "fk4" or (not radesys and equinox < 1984):
        return {"frame": "fk4", "equinox": f"B{equinox or 1950}"}
    return {"frame": "fk5", "equinox": f"J{equinox or 2000}"}


def expected_position(hdul, spec):
    kind, hdu = spec[0], spec[1]
    header = hdul[hdu].header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "wcs":
            wcs = WCS(header, hdul).celestial
            centre = wcs.pixel_to_world((header["NAXIS1"] - 1) / 2, (header["NAXIS2"] - 1) / 2)
            return centre.icrs
        ra, dec = header[spec[2]], header[spec[3]]
        sexagesimal = isinstance(ra, str) and ":" in ra or isinstance(ra, str) and " " in ra.strip()
        unit = (u.deg, u.deg) if kind == "keys" and spec[2] == "CRVAL1" or not sexagesimal else (u.hourangle, u.deg)
        return SkyCoord(str(ra).strip() if sexagesimal else float(ra), str(dec).strip() if sexagesimal else float(dec),
                        unit=unit, **frame_of(header)).icrs


def expected_start(hdul, spec):
    key, hdu, iso_date, clock_key = (spec + (None,))[:4] if spec[0] != "day" else ("day", spec[1], spec[2], None)
    header = hdul[hdu].header
    scale = {"TT": "tt", "UTC": "utc", "TAI": "tai"}[str(header.get("TIMESYS", "UTC")).strip().upper()]
    if key == "day":
        return Time(iso_date, format="iso", scale="utc"), "day"
    text = iso_date or str(header[key]).strip().rstrip("Z")
    if clock_key:
        text = f"{text}T{str(header[clock_key]).strip()}"
    return Time(text, format="isot", scale=scale).utc, "time"


@pytest.fixture
def indexed(real_fits, real_fits_more, data_root):
    paths = [p for p in all_files(real_fits, real_fits_more) if os.path.basename(p) not in REFUSED]
    rows, rejected = index.describe_files(NIGHT, paths)
    return {r["filename"]: r for r in rows}, rejected


def test_every_shared_file_is_listed_here(real_fits, real_fits_more):
    names = {os.path.basename(p) for p in all_files(real_fits, real_fits_more)}
    assert names == set(EXPECTED) | set(REFUSED)


def test_download_refuses_exactly_the_broken_files_with_their_reason(real_fits, real_fits_more):
    for path in all_files(real_fits, real_fits_more):
        name = os.path.basename(path)
        if name in REFUSED:
            with pytest.raises(StepError, match=REFUSED[name]):
                verify_fits(path, os.path.getsize(path))
        else:
            verify_fits(path, os.path.getsize(path))  # gzip and tile-compressed files included


def test_every_other_file_is_indexed(indexed):
    rows, rejected = indexed
    assert rejected == 0 and set(rows) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_position_and_date_are_astropys(name, indexed, real_fits, real_fits_more):
    row = indexed[0][name]
    path = next(p for p in all_files(real_fits, real_fits_more) if os.path.basename(p) == name)
    position, start = EXPECTED[name]
    with fits.open(path) as hdul:
        if position[0] is None:
            assert row["ra"] is None and row["dec"] is None and row["coord_source"] is None, row["notes"]
            assert row["native_frame"] == position[1]
        else:
            truth = expected_position(hdul, position)
            got = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
            assert got.separation(truth).arcsec < 1.0, (row["ra"], row["dec"], truth, row["notes"])
            assert row["coord_source"] == ("wcs" if position[0] == "wcs" else "keywords")
        if start is None:
            assert row["date_obs"] is None and row["mjd"] is None, row["notes"]
        else:
            truth, precision = expected_start(hdul, start)
            assert row["date_obs"] == truth.to_datetime(timezone=row["date_obs"].tzinfo), (row["date_obs"], truth)
            assert row["mjd"] == pytest.approx(truth.mjd, abs=1e-9)
            assert row["date_precision"] == precision
    # one note per decision: exactly one about the date, none contradicting it
    assert sum(n.startswith(("date_obs ", "no usable date", "no DATE-OBS")) for n in row["notes"]) == 1, row["notes"]


def test_footprints_contain_their_centre_and_have_a_field_of_view(indexed):
    rows = indexed[0]
    with_wcs = [r for r in rows.values() if r["coord_source"] == "wcs"]
    assert len(with_wcs) >= 12
    for row in with_wcs:
        if row["s_region"] is None:  # the all-sky map: its corners are outside the projection
            assert row["filename"] == "rosat_rass_allsky_glon_ait.fits" and row["s_fov"] is None
            continue
        corners = np.array([[float(x.rstrip("d")) for x in v.split(",")]
                            for v in row["s_region"].strip("{}()").split("),(")])
        sky = SkyCoord(corners[:, 0] * u.deg, corners[:, 1] * u.deg)
        centre = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
        assert len(corners) == 4 and 0 < row["s_fov"] < 180
        assert max(centre.separation(sky).deg) <= row["s_fov"] / 2 * 1.01 + 1e-9, row["filename"]
