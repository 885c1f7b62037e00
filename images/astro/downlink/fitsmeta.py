"""What the observation index needs from any FITS file, read with astropy.

Nothing here knows a particular instrument. Every keyword is looked up in the primary HDU first,
then in the extensions in order (e.g. Chandra puts DATE-OBS only in its EVENTS extension). Every
header card is parsed once; a card whose value cannot be parsed (e.g. two numbers in one value) is
kept as its raw 80-character text in the header JSON, with a note, and the file is described from
the cards that do parse. Values that cannot be trusted are left None, and a note says why; each
decision is one note. Dates: fitstime.py; positions, footprint and frames: fitssky.py.
gzip (.gz) and tile-compressed (.fz, or RICE/GZIP/HCOMPRESS/PLIO inside a .fits) files are read as
astropy reads them: decompressed headers, the compressed image's own WCS.
"""
import collections
import contextlib
import functools
import math
import os
import warnings

import numpy as np
from astropy.io import fits
from astropy.io.fits import card as fits_card

from downlink import StepError
from downlink.fitscheck import check_complete, gunzipped_size, is_gzip, open_fits, verify_fits  # noqa: F401 - verify_fits: used by others
from downlink.fitssky import image_hdus, locate, wcs_header  # noqa: F401 - image_hdus, wcs_header: used by others
from downlink.fitstime import iso_time, parse_date_end, parse_date_obs  # noqa: F401 - iso_time: used by tests

IMAGETYP_KEYS = ("IMAGETYP", "OBSTYPE", "EXPTYPE")
# Normalised image types; anything unrecognised is kept as 'other' (the raw value is stored too).
IMAGETYP_WORDS = (
    ("bias", ("bias", "zero")),
    ("dark", ("dark",)),
    ("flat", ("flat", "skyflat", "domeflat", "twilight")),
    ("object", ("object", "light", "science", "expose", "sci")),
)
FILTER_KEYS = ("FILTER", "FILTNAM1", "FILTER1", "FILTNAME")
EXPTIME_KEYS = ("EXPTIME", "EXPOSURE", "XPOSURE", "ITIME")


@functools.lru_cache(maxsize=4)
def conf_snapshot_type(names):
    return collections.namedtuple("FitsConf", names)


@contextlib.contextmanager
def fast_card_config():
    """Card parsing reads two settings of astropy.io.fits.conf for every card, and each read goes
    through astropy's config machinery: a fifth of describe()'s time. While a file is described,
    card.py sees a plain snapshot of the same values instead (restored afterwards)."""
    original = getattr(fits_card, "conf", None)
    if original is None:  # another astropy layout: no shortcut, same results
        yield
        return
    fits_card.conf = conf_snapshot_type(tuple(original))(*(getattr(original, k) for k in original))
    try:
        yield
    finally:
        fits_card.conf = original


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
    if isinstance(value, complex):
        return str(value)
    return str(value).replace("\x00", "")


class Cards:
    """One HDU's header parsed once: `json` ({keyword: value}, COMMENT/HISTORY as lists, repeated
    keywords with every value, unparsable cards as their raw text), `values` (the first value of
    each keyword, for look-ups; unparsable ones left out) and `bad` (their keywords)."""

    def __init__(self, header, index=0, notes=None):
        self.json, self.values, self.bad = {}, {}, set()
        for card in header.cards:
            key = card.keyword or "BLANK"
            try:
                raw = card.value  # describe() silences astropy's warnings for the whole file
            except Exception as exc:  # noqa: BLE001 - astropy's VerifyError and friends: keep the text
                # card.image would re-format ("fix") the card: the bytes as read are what is kept
                text = (getattr(card, "_image", None) or card.image).rstrip()
                self.bad.add(key)
                if notes is not None:
                    notes.append(f"HDU {index} card {key} unparsable ({exc}): kept as its raw text {text!r}")
                self.add(key, text)
                continue
            if key in ("COMMENT", "HISTORY", "BLANK"):
                text = str(raw).replace("\x00", "")
                if key != "BLANK" or text.strip():
                    self.json.setdefault(key, []).append(text)
                continue
            value = json_value(raw)
            self.add(key, value)
            if key not in self.values and value is not None:
                self.values[key] = value

    def add(self, key, value):
        if key in self.json:
            previous = self.json[key]
            self.json[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            self.json[key] = value


def header_cards(header):
    """{keyword: value} of a header, as stored in the index's header JSON."""
    return Cards(header).json


def lookup(headers, keys):
    """First non-empty value of any of keys, primary HDU first; (value, key) or (None, None)."""
    for header in headers:
        for key in keys:
            value = header.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            return value, key
    return None, None


def lookup_text(headers, keys):
    value, _ = lookup(headers, keys)
    return str(value).strip() if value is not None else None


def as_float(value):
    if isinstance(value, bool):
        return None
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


def describe(path):
    """The index row for one FITS file (without path, night, sha256 and size); StepError when it
    cannot be read (the index step quarantines it)."""
    with fast_card_config(), warnings.catch_warnings():
        # astropy's and erfa's warnings (a stale IERS table offline, UTC before 1960) are not news
        # about the file; what matters about the file is in its notes.
        warnings.simplefilter("ignore")
        return describe_file(path)


def describe_file(path):
    notes = []
    size = gunzipped_size(path) if is_gzip(path) else os.path.getsize(path)
    hdul = open_fits(path)
    try:
        # astropy stops quietly at the end of a cut-short file: a truncated file is refused here too
        check_complete(path, hdul, size)
        parsed = [Cards(hdu.header, i, notes) for i, hdu in enumerate(hdul)]
        headers = [c.values for c in parsed]
        imagetyp_raw, _ = lookup(headers, IMAGETYP_KEYS)
        exptime = as_float(lookup(headers, EXPTIME_KEYS)[0])
        if exptime is not None and exptime < 0:
            notes.append(f"exposure time {exptime} is negative: left empty")
            exptime = None
        start = parse_date_obs(headers, notes)
        end = parse_date_end(headers, start, exptime, notes)
        sky = locate(hdul, headers, {i: c.bad for i, c in enumerate(parsed) if c.bad}, notes)
        airmass = as_float(lookup(headers, ("AIRMASS",))[0])
        if airmass is not None and not 1.0 <= airmass <= 40.0:
            notes.append(f"AIRMASS {airmass} outside 1..40: left empty")
            airmass = None
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
            "date_obs": start.datetime if start is not None else None,
            "date_precision": start.precision if start is not None else None,
            "date_end": end,
            "mjd": start.mjd if start is not None else None,
            "ra": sky.ra,
            "dec": sky.dec,
            "coord_source": sky.source,
            "native_frame": sky.native,
            "s_region": sky.region,
            "s_fov": sky.fov,
            "airmass": airmass,
            "naxis1": shape[0],
            "naxis2": shape[1],
            "n_ext": len(hdul),
            "header": [{"hdu": i, "name": hdu.name, "cards": parsed[i].json} for i, hdu in enumerate(hdul)],
            "notes": notes,
        }
    except StepError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever else a file can make astropy raise: quarantine it, with the reason
        raise StepError(f"{path}: cannot be described: {type(exc).__name__}: {exc}") from exc
    finally:
        hdul.close()
