"""When an exposure started and ended, from any of the FITS date forms, read with astropy.time.

The keys are looked for in every HDU, primary first; a date and the time of day that completes it
are taken from the same HDU when it has both. In order of preference:
  1. DATE-OBS / DATE_OBS / DATE-BEG: ISO 8601 with or without a trailing 'Z' and fractional
     seconds; the pre-2000 FITS form dd/mm/yy (always 19yy); YYYY/MM/DD. A date without a time of
     day is completed from TIME-OBS, TIME_OBS, UT, UTC-OBS or UTSTART; without one, it is kept as a
     date whose time of day is unknown (precision 'day') unless a numeric key below gives the time.
  2. MJD-OBS / MJD_OBS / MJD-BEG, then JD, then TSTART counted from MJDREF (or MJDREFI + MJDREFF)
     in TIMEUNIT (default seconds).
Every value is read in the file's TIMESYS (UTC when absent, as the FITS standard says) and stored
as UTC. The end is DATE-END (+ TIME-END), MJD-END or TSTOP, else start + exposure time.
Each decision is one note; a key that could not be read is named in the note of what was used.
"""
import collections
import math
import re
from datetime import datetime, timedelta, timezone

import erfa
from astropy import units as u
from astropy.time import Time, TimeDelta

# Start of exposure: UTC datetime, MJD (UTC) and 'time' or 'day' (the time of day is unknown).
ObsTime = collections.namedtuple("ObsTime", "datetime mjd precision")

DATE_KEYS = ("DATE-OBS", "DATE_OBS", "DATE-BEG")
CLOCK_KEYS = ("TIME-OBS", "TIME_OBS", "UT", "UTC-OBS", "UTSTART")
MJD_KEYS = ("MJD-OBS", "MJD_OBS", "MJD-BEG")
END_DATE_KEYS = ("DATE-END", "DATE_END")
END_CLOCK_KEYS = ("TIME-END", "TIME_END", "UTEND")
ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{1,2}:\d{2}(?::\d{2}(?:\.\d*)?)?))?Z?$")
OLD_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{2})$")
SLASH_DATE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})$")
ISO_FRACTION = re.compile(r"\.(\d+)$")
CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?$")
# TIMESYS values astropy.time knows, by FITS name; 'UT' and 'GMT' are the old names of UTC.
SCALES = {"UTC": "utc", "UT": "utc", "GMT": "utc", "Z": "utc", "TAI": "tai", "IAT": "tai", "TT": "tt", "TDT": "tt",
          "ET": "tt", "TDB": "tdb", "TCG": "tcg", "TCB": "tcb", "GPS": "tai"}


def first(headers, keys):
    """(value, key, hdu index) of the first non-empty value of any key, HDU by HDU; else Nones."""
    for index, header in enumerate(headers):
        for key in keys:
            if key in header:
                value = header[key]
                if value is None or (isinstance(value, str) and not value.strip()) or isinstance(value, bool):
                    continue
                return value, key, index
    return None, None, None


def in_hdu_first(headers, keys, index):
    """Like first(), but the HDU `index` is searched before the others."""
    if index is not None:
        value, key, _ = first([headers[index]], keys)
        if value is not None:
            return value, key, index
    return first(headers, keys)


def number(value):
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def scale_of(headers, index, notes):
    raw, _, _ = in_hdu_first(headers, ("TIMESYS",), index)
    if raw is None:
        return "utc", None
    name = str(raw).strip().upper()
    if name in SCALES:
        return SCALES[name], name
    notes.append(f"TIMESYS {raw!r} is not a time scale astropy knows: read as UTC")
    return "utc", name


def iso_of(text):
    """(ISO date, ISO time or None, rewritten-from note or None) of a DATE-OBS text; ValueError if
    it is no form this reader knows."""
    text = text.strip()
    m = ISO.match(text)
    if m:
        return m.group(1), m.group(2), None
    m = OLD_DATE.match(text)
    if m:
        day, month, year = m.groups()
        return f"19{year}-{month}-{day}", None, "the pre-2000 FITS form dd/mm/yy"
    m = SLASH_DATE.match(text)
    if m:
        return "-".join(m.groups()), None, "YYYY/MM/DD"
    raise ValueError("not an ISO 8601 date (YYYY-MM-DD[Thh:mm:ss[.s]][Z]) nor dd/mm/yy")


def clock_of(value):
    """'hh:mm:ss[.s]' of a time-of-day value, or None."""
    m = CLOCK.match(str(value).strip())
    if not m:
        return None
    hh, mm, ss = int(m.group(1)), int(m.group(2)), m.group(3) or "00"
    if hh > 23 or mm > 59 or float(ss) >= 61:
        return None
    return f"{hh:02d}:{mm:02d}:{ss}"


def to_obs(time, precision):
    """ObsTime (UTC) of an astropy Time; ValueError when Python's datetime cannot hold it (a leap second)."""
    utc = time.utc
    if utc.jd1 != utc.jd1 or not -1e6 < utc.mjd < 1e6:
        raise ValueError("not a finite date")
    return ObsTime(utc.to_datetime(timezone=timezone.utc), float(utc.mjd), precision)


def iso_time(text, scale="utc", precision="time"):
    """ObsTime of an ISO 8601 date and time; ValueError (astropy's message) if it is not a valid one.
    astropy.time costs about a millisecond per file, so the common case (UTC, at most microseconds,
    no leap second) is done with the same UTC calendar (erfa, which astropy uses) directly; the rest
    goes through astropy.time (tests/unit/astro/test_fast_paths.py compares the two)."""
    fraction = ISO_FRACTION.search(text)
    if scale == "utc" and ":60" not in text and (fraction is None or len(fraction.group(1)) <= 6):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass  # astropy.time below gives the reason
        else:
            seconds = moment.second + moment.microsecond / 1e6
            jd1, jd2 = erfa.dtf2d(b"UTC", moment.year, moment.month, moment.day, moment.hour, moment.minute, seconds)
            return ObsTime(moment.replace(tzinfo=timezone.utc), float((jd1 - erfa.DJM0) + jd2), precision)
    return to_obs(Time(text, format="isot", scale=scale), precision)


def from_date_keys(headers, notes, date_keys, clock_keys):
    """(ObsTime, note) from a date key (+ a time-of-day key), or (None, reason it was not used)."""
    raw, key, index = first(headers, date_keys)
    if raw is None:
        return None, None, None
    where = f"{key} {str(raw).strip()!r}" + (f" (HDU {index})" if index else "")
    try:
        day, clock, form = iso_of(str(raw))
    except ValueError as exc:
        return None, f"{where} unreadable: {exc}", index
    said = [f"read as {day}, {form}"] if form else []
    precision = "time"
    if clock is None:
        clock_raw, clock_key, clock_index = in_hdu_first(headers, clock_keys, index)
        clock = clock_of(clock_raw) if clock_raw is not None else None
        if clock is not None:
            said.append(f"time of day from {clock_key} {str(clock_raw).strip()!r}"
                        + (f" (HDU {clock_index})" if clock_index != index else ""))
        else:
            if clock_raw is not None:
                said.append(f"{clock_key} {str(clock_raw).strip()!r} is no time of day")
            clock, precision = "00:00:00", "day"
    scale, scale_name = scale_of(headers, index, notes)
    if scale_name and scale != "utc":
        said.append(f"TIMESYS {scale_name}, stored as UTC")
    try:
        obs = iso_time(f"{day}T{clock}", scale, precision)
    except ValueError as exc:
        reason = "a leap second, which a UTC timestamp cannot hold" if ":60" in clock else str(exc)
        return None, f"{where} unreadable: {reason}", index
    return obs, f"from {where}" + (f": {'; '.join(said)}" if said else ""), index


def from_numbers(headers, notes, mjd_keys=MJD_KEYS, jd_keys=("JD",), offset_keys=("TSTART",)):
    """(ObsTime, note) from an MJD, a JD or a TSTART-style offset from MJDREF, or (None, None)."""
    for keys, fmt in ((mjd_keys, "mjd"), (jd_keys, "jd")):
        raw, key, index = first(headers, keys)
        value = number(raw)
        if value is not None and value > 0:
            scale, scale_name = scale_of(headers, index, notes)
            try:
                obs = to_obs(Time(value, format=fmt, scale=scale), "time")
            except ValueError:
                continue
            return obs, f"from {key} {value!r}" + (f" (HDU {index})" if index else "") + \
                (f", TIMESYS {scale_name}, stored as UTC" if scale_name and scale != "utc" else "")
    raw, key, index = first(headers, offset_keys)
    value = number(raw)
    if value is not None:
        ref = reference_mjd(headers, index)
        if ref is not None:
            scale, scale_name = scale_of(headers, index, notes)
            unit_raw, _, _ = in_hdu_first(headers, ("TIMEUNIT",), index)
            try:
                unit = u.Unit(str(unit_raw).strip()) if unit_raw is not None else u.s
                start = Time(ref[0], format="mjd", scale=scale) + TimeDelta(value * unit)
                obs = to_obs(start, "time")
            except (ValueError, TypeError):
                return None, None
            return obs, (f"from {key} {value!r} {unit} after {ref[1]} {ref[0]!r}" + (f" (HDU {index})" if index else "")
                         + (f", TIMESYS {scale_name}, stored as UTC" if scale_name and scale != "utc" else ""))
    return None, None


def reference_mjd(headers, index):
    """(MJD, key) of the time reference: MJDREF, or MJDREFI + MJDREFF."""
    ref, _, _ = in_hdu_first(headers, ("MJDREF",), index)
    if number(ref) is not None:
        return number(ref), "MJDREF"
    whole, _, _ = in_hdu_first(headers, ("MJDREFI",), index)
    if number(whole) is not None:
        frac, _, _ = in_hdu_first(headers, ("MJDREFF",), index)
        return number(whole) + (number(frac) or 0.0), "MJDREFI+MJDREFF"
    return None


def parse_date_obs(headers, notes):
    """ObsTime of the start of exposure, or None; appends exactly one note saying what was decided."""
    dated, said, _ = from_date_keys(headers, notes, DATE_KEYS, CLOCK_KEYS)
    if dated is not None and dated.precision == "time":
        notes.append(f"date_obs {said}")
        return dated
    numeric, numeric_said = from_numbers(headers, notes)
    if numeric is not None:
        if dated is not None:
            if abs(numeric.mjd - dated.mjd - 0.5) <= 0.5 + 1e-9:  # the same day, now with its time
                notes.append(f"date_obs {numeric_said} (the date alone {said}, with no time of day)")
                return numeric
            notes.append(f"date_obs {said}, time of day unknown ({numeric_said[5:]} gives a different day"
                         f", {numeric.datetime.date()}: not used)")
            return dated
        notes.append(f"date_obs {numeric_said}" + (f" ({said})" if said else ""))
        return numeric
    if dated is not None:
        notes.append(f"date_obs {said}: time of day unknown, stored as the date at 00:00 UTC (precision 'day')")
        return dated
    notes.append(f"no usable date in any HDU ({said}): date_obs left empty" if said else
                 "no DATE-OBS, DATE_OBS, DATE-BEG, MJD-OBS, JD or TSTART in any HDU: date_obs left empty")
    return None


def parse_date_end(headers, start, exptime, notes):
    """UTC datetime of the end of exposure, or None (no note when simply absent)."""
    ended, said, _ = from_date_keys(headers, notes, END_DATE_KEYS, END_CLOCK_KEYS)
    if ended is not None and ended.precision == "time":
        return ended.datetime
    numeric, _ = from_numbers(headers, notes, mjd_keys=("MJD-END", "MJD_END"), jd_keys=(), offset_keys=("TSTOP",))
    if numeric is not None:
        return numeric.datetime
    if start is not None and start.precision == "time" and exptime is not None:
        return start.datetime + timedelta(seconds=exptime)
    return None
