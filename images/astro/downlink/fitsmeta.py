"""What the observation index needs from any FITS file, read with astropy.

Nothing here knows a particular instrument. Every keyword is looked up in the primary HDU first,
then in the extensions in order (e.g. Chandra puts DATE-OBS only in its EVENTS extension).
Values that cannot be trusted are left None, and a note says why. Nothing is guessed:
- DATE-OBS in ISO 8601 is used as written (UTC). A date with no time is completed from TIME-OBS,
  UT, UTSTART or UTC-OBS when one is present.
- The old 'dd/mm/yy' form (FITS before 2000, which always means 19yy) is normalised, with a note.
- With no usable DATE-OBS, MJD-OBS is used, with a note. With neither, date_obs is None.
- RA/Dec is the frame centre from a celestial WCS; otherwise the pointing keywords (RA/DEC,
  OBJCTRA/OBJCTDEC, TELRA/TELDEC, as degrees or sexagesimal with RA in hours).
"""
import collections
import contextlib
import math
import re
import warnings
from datetime import datetime, timezone

import erfa
import numpy as np
from astropy import units as u
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.io.fits import card as fits_card
from astropy.time import Time
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from downlink import StepError

IMAGETYP_KEYS = ("IMAGETYP", "OBSTYPE")
# Normalised image types; anything unrecognised is kept as 'other' (the raw value is stored too).
IMAGETYP_WORDS = (
    ("bias", ("bias", "zero")),
    ("dark", ("dark",)),
    ("flat", ("flat", "skyflat", "domeflat", "twilight")),
    ("object", ("object", "light", "science", "expose", "sci")),
)
FILTER_KEYS = ("FILTER", "FILTNAM1", "FILTER1", "FILTNAME")
EXPTIME_KEYS = ("EXPTIME", "EXPOSURE", "ITIME")
TIME_KEYS = ("TIME-OBS", "UT", "UTSTART", "UTC-OBS")
POINTING_KEYS = (("RA", "DEC"), ("OBJCTRA", "OBJCTDEC"), ("TELRA", "TELDEC"), ("RA_OBJ", "DEC_OBJ"))
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
OLD_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{2})$")
ISO_FRACTION = re.compile(r"\.(\d+)$")
# Every keyword (with any axis number or alternate letter) that can take part in a celestial WCS,
# its distortions (SIP, Paper IV, DSS plate solutions), auxiliary keys or wcslib's fixes. WCS() serialises and re-parses
# the header it is given several times; handing it these cards alone cuts its cost several-fold
# and gives the same transformation. Over-inclusive on purpose (PCOUNT, DATE match: harmless).
WCS_KEYWORD = re.compile(
    r"^(NAXIS|WCSAXES|CTYPE|LONGPOLE|ALTR|CRVAL|CRPIX|CDELT|CROTA|CUNIT|CRDER|CSYER|CNAME|WCSNAME|PC|CD|PV|PS|PROJP|LONPOLE|"
    r"LATPOLE|RESTFRQ|RESTFREQ|RESTWAV|RADESYS|RADECSYS|EQUINOX|EPOCH|MJD|DATE|OBSGEO|SPECSYS|SSYS|VELOSYS|"
    r"VELREF|ZSOURCE|VSOURCE|VELANGL|CPDIS|CQDIS|DP|DQ|D2IM|AXISCORR|A_|B_|AP_|BP_|TIME|TREF|PLEPHEM|JDREF|"
    r"JEPOCH|BEPOCH|TSTART|TSTOP|XPOSURE|TELAPSE|DOBS|CPERR|CQERR|DVERR|RSUN|DSUN|CRLN|CRLT|HGLN|HGLT|"
    # the DSS plate solution, which wcslib turns into a distortion
    r"PLT|PPO|AMDX|AMDY|CNPIX|XPIXELSZ|YPIXELSZ)")

# Start of exposure: UTC as a datetime (microseconds) and as an MJD.
ObsTime = collections.namedtuple("ObsTime", "datetime mjd")


@contextlib.contextmanager
def fast_card_config():
    """Card parsing reads two settings of astropy.io.fits.conf for every card, and each read goes
    through astropy's config machinery: a fifth of describe()'s time. While a file is described,
    card.py sees a plain snapshot of the same values instead (restored afterwards)."""
    original = getattr(fits_card, "conf", None)
    if original is None:  # another astropy layout: no shortcut, same results
        yield
        return
    fits_card.conf = collections.namedtuple("FitsConf", list(original))(*(getattr(original, k) for k in original))
    try:
        yield
    finally:
        fits_card.conf = original


def open_fits(path):
    """Open a FITS file and read every HDU's header; a clear StepError if it is not valid FITS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for broken files
        raise StepError(f"{path}: not a readable FITS file: {exc}") from exc
    return hdul


def check_complete(path, hdul, size):
    """Every HDU's data must lie inside the file (a truncated download fails here)."""
    for index, hdu in enumerate(hdul):
        info = hdu.fileinfo()
        if info is None:
            continue
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise StepError(f"{path}: truncated: HDU {index} needs {end} bytes, the file has {size}")


def verify_fits(path, size):
    """Raise StepError unless path is complete, readable FITS."""
    hdul = open_fits(path)
    try:
        check_complete(path, hdul, size)
    finally:
        hdul.close()


def json_value(value):
    """A header value as something JSON (and Postgres jsonb) accepts."""
    if isinstance(value, fits.card.Undefined):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else str(value)
    return str(value).replace("\x00", "")


def header_cards(header):
    """{keyword: value} with COMMENT/HISTORY kept as lists; repeated keywords keep every value."""
    cards = {}
    for card in header.cards:
        key = card.keyword or "BLANK"
        if key in ("COMMENT", "HISTORY", "BLANK"):
            text = str(card.value).replace("\x00", "")
            if key != "BLANK" or text.strip():
                cards.setdefault(key, []).append(text)
            continue
        value = json_value(card.value)
        if key in cards:
            previous = cards[key]
            cards[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            cards[key] = value
    return cards


def lookup(headers, keys):
    """First non-empty value of any of keys, primary HDU first; (value, key) or (None, None)."""
    for header in headers:
        for key in keys:
            if key in header:
                value = header[key]
                if isinstance(value, fits.card.Undefined) or (isinstance(value, str) and not value.strip()):
                    continue
                return value, key
    return None, None


def lookup_text(headers, keys):
    value, _ = lookup(headers, keys)
    return str(value).strip() if value is not None else None


def as_float(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def normalise_imagetyp(raw):
    if raw is None:
        return None
    text = str(raw).strip().lower()
    for kind, words in IMAGETYP_WORDS:
        if any(word in text for word in words):
            return kind
    return "other"


def obs_time(time):
    return ObsTime(time.to_datetime(timezone=timezone.utc), float(time.mjd))


def iso_time(text):
    """ObsTime of an ISO 8601 UTC date and time; ValueError (astropy's message) if it is not a valid one.
    astropy.time costs about a millisecond per file, so the common case is done with the same UTC
    calendar (erfa, which astropy uses) directly; leap seconds and more than microsecond precision
    still go through astropy.time."""
    fraction = ISO_FRACTION.search(text)
    if not text.endswith(":60") and ":60." not in text and (fraction is None or len(fraction.group(1)) <= 6):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass  # astropy.time below gives the reason
        else:
            seconds = moment.second + moment.microsecond / 1e6
            jd1, jd2 = erfa.dtf2d(b"UTC", moment.year, moment.month, moment.day, moment.hour, moment.minute, seconds)
            return ObsTime(moment.replace(tzinfo=timezone.utc), float((jd1 - erfa.DJM0) + jd2))
    return obs_time(Time(text, format="isot", scale="utc"))


def parse_date_obs(headers, notes):
    """ObsTime (datetime, mjd) or None for the start of exposure."""
    raw, _ = lookup(headers, ("DATE-OBS", "DATE-BEG"))
    if raw is not None:
        text = str(raw).strip()
        m = OLD_DATE.match(text)
        if m:
            day, month, year = m.groups()
            iso = f"19{year}-{month}-{day}"
            notes.append(f"DATE-OBS {text!r} is the old dd/mm/yy form: read as {iso}")
            text = iso
        if ISO_DATE.match(text):
            clock, clock_key = lookup(headers, TIME_KEYS)
            if clock is not None and re.match(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", str(clock).strip()):
                text = f"{text}T{str(clock).strip()}"
                notes.append(f"DATE-OBS has no time of day: time taken from {clock_key}")
        if ISO_DATETIME.match(text):
            try:
                return iso_time(text)
            except ValueError as exc:
                notes.append(f"DATE-OBS {str(raw)!r} is not a valid date: {exc}")
        else:
            notes.append(f"DATE-OBS {str(raw)!r} is not a date and time this indexer can read without guessing")
    mjd = as_float(lookup(headers, ("MJD-OBS",))[0])
    if mjd is not None and mjd > 0:
        notes.append("date_obs taken from MJD-OBS")
        return obs_time(Time(mjd, format="mjd", scale="utc"))
    notes.append("no usable DATE-OBS or MJD-OBS in any HDU: date_obs left empty")
    return None


def image_hdus(hdul):
    return [hdu for hdu in hdul if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2
            and all(hdu.header.get(f"NAXIS{i}", 0) > 0 for i in (1, 2))]


def wcs_header(header):
    """The header's WCS cards alone, or None when it has no axis types (so no celestial WCS)."""
    if not any(key.startswith("CTYPE") for key in header.keys()):
        return None
    return fits.Header([card for card in header.cards if WCS_KEYWORD.match(card.keyword)])


def wcs_centre(hdul, notes):
    """(ra, dec) in degrees at the centre of the first image HDU with a celestial WCS."""
    for hdu in image_hdus(hdul):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = wcs_header(hdu.header)
                if header is None:
                    continue
                wcs = WCS(header, fobj=hdul)
                if not (wcs.naxis == 2 and wcs.wcs.lng == 0 and wcs.wcs.lat == 1):
                    wcs = wcs.celestial  # a copy; needless when the WCS is already (lon, lat)
                if not wcs.has_celestial:
                    continue
                nx, ny = hdu.header["NAXIS1"], hdu.header["NAXIS2"]
                ra, dec = wcs.all_pix2world([[(nx - 1) / 2, (ny - 1) / 2]], 0)[0]
        except Exception as exc:  # noqa: BLE001 - a broken WCS is a note, not a failure
            notes.append(f"WCS of HDU {hdul.index_of(hdu)} unusable: {exc}")
            continue
        if math.isfinite(ra) and math.isfinite(dec) and -90 <= dec <= 90:
            return float(ra) % 360.0, float(dec)
    return None


def pointing(headers, notes):
    """(ra, dec) in degrees from pointing keywords, or None."""
    for ra_key, dec_key in POINTING_KEYS:
        ra_raw, _ = lookup(headers, (ra_key,))
        dec_raw, _ = lookup(headers, (dec_key,))
        if ra_raw is None or dec_raw is None:
            continue
        try:
            if isinstance(ra_raw, str) and (":" in ra_raw or " " in ra_raw.strip()):
                ra = Angle(ra_raw, unit=u.hourangle).degree
            else:
                ra = float(ra_raw)
            dec = Angle(dec_raw, unit=u.deg).degree if isinstance(dec_raw, str) else float(dec_raw)
        except (ValueError, TypeError) as exc:
            notes.append(f"{ra_key}/{dec_key} ({ra_raw!r}, {dec_raw!r}) unreadable: {exc}")
            continue
        if 0 <= ra < 360 and -90 <= dec <= 90:
            return ra, dec
        notes.append(f"{ra_key}/{dec_key} ({ra_raw!r}, {dec_raw!r}) out of range")
    return None


def describe(path):
    """The index row for one FITS file (without path, night, sha256 and size)."""
    with fast_card_config():
        return describe_file(path)


def describe_file(path):
    notes = []
    hdul = open_fits(path)
    try:
        headers = [hdu.header for hdu in hdul]
        imagetyp_raw, _ = lookup(headers, IMAGETYP_KEYS)
        date_obs = parse_date_obs(headers, notes)
        mjd = as_float(lookup(headers, ("MJD-OBS",))[0])
        if mjd is None and date_obs is not None:
            mjd = date_obs.mjd
        coords, source = wcs_centre(hdul, notes), "wcs"
        if coords is None:
            coords, source = pointing(headers, notes), "keywords"
        if coords is None:
            notes.append("no celestial WCS or pointing keywords: ra/dec left empty")
            source = None
        airmass = as_float(lookup(headers, ("AIRMASS",))[0])
        if airmass is not None and not 1.0 <= airmass <= 40.0:
            notes.append(f"AIRMASS {airmass} outside 1..40: left empty")
            airmass = None
        exptime = as_float(lookup(headers, EXPTIME_KEYS)[0])
        if exptime is not None and exptime < 0:
            notes.append(f"exposure time {exptime} is negative: left empty")
            exptime = None
        images = image_hdus(hdul)
        shape = (images[0].header["NAXIS1"], images[0].header["NAXIS2"]) if images else (None, None)
        return {
            "instrument": lookup_text(headers, ("INSTRUME",)),
            "telescope": lookup_text(headers, ("TELESCOP",)),
            "imagetyp": normalise_imagetyp(imagetyp_raw),
            "imagetyp_raw": str(imagetyp_raw).strip() if imagetyp_raw is not None else None,
            "object": lookup_text(headers, ("OBJECT",)),
            "filter": lookup_text(headers, FILTER_KEYS),
            "exptime": exptime,
            "date_obs": date_obs.datetime if date_obs is not None else None,
            "mjd": mjd,
            "ra": coords[0] if coords else None,
            "dec": coords[1] if coords else None,
            "coord_source": source,
            "airmass": airmass,
            "naxis1": shape[0],
            "naxis2": shape[1],
            "n_ext": len(hdul),
            "header": [{"hdu": i, "name": hdu.name, "cards": header_cards(hdu.header)} for i, hdu in enumerate(hdul)],
            "notes": notes,
        }
    finally:
        hdul.close()

