"""Where on the sky a FITS file looks, in ICRS, with astropy.wcs and astropy.coordinates.

1. The first image HDU with a celestial WCS: its centre and the four corners of its pixel grid
   (the footprint, a pgSphere polygon) in the WCS's own frame (FK4/FK5 with their equinox,
   Galactic, ecliptic, ICRS: astropy.wcs.utils.wcs_to_celestial_frame), transformed to ICRS by
   astropy.coordinates. A WCS whose axes are not on the sky (helioprojective HPLN/HPLT and other
   solar frames, spectral, LINEAR, pixel) never gives ra/dec: it is named in a note.
2. Else pointing keywords, first pair found in any HDU: RA/DEC, OBJCTRA/OBJCTDEC, RA_TARG/DEC_TARG,
   RA_OBJ/DEC_OBJ, RA_NOM/DEC_NOM, TELRA/TELDEC, RA_PNT/DEC_PNT (degrees, or sexagesimal with RA in
   hours), then CRVAL1/CRVAL2 of celestial CTYPEs in an HDU without an image WCS (an events table's
   pointing). Their frame is that HDU's RADESYS/RADECSYS and EQUINOX/EPOCH, read by wcslib the way it
   reads an image's (FK4 before 1984, FK5 from then, ICRS with neither).
No frame maths here: astropy does all of it.
"""
import functools
import math
import re
import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import FK4, FK5, ICRS, Angle, BarycentricMeanEcliptic, FK4NoETerms, Galactic, SkyCoord, Supergalactic, angular_separation
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame

POINTING_KEYS = (("RA", "DEC"), ("OBJCTRA", "OBJCTDEC"), ("RA_TARG", "DEC_TARG"), ("RA_OBJ", "DEC_OBJ"),
                 ("RA_NOM", "DEC_NOM"), ("TELRA", "TELDEC"), ("RA_PNT", "DEC_PNT"))
FRAME_KEYS = ("RADESYS", "RADECSYS", "EQUINOX", "EPOCH", "MJD-OBS", "DATE-OBS")
# Every keyword (with any axis number or alternate letter) that can take part in a celestial WCS,
# its distortions (SIP, Paper IV, DSS plate solutions), auxiliary keys or wcslib's fixes. WCS()
# serialises and re-parses the header it is given several times; handing it these cards alone cuts
# its cost several-fold and gives the same transformation (test_fast_paths.py checks it).
WCS_KEYWORD = re.compile(
    r"^(NAXIS|WCSAXES|CTYPE|LONGPOLE|ALTR|CRVAL|CRPIX|CDELT|CROTA|CUNIT|CRDER|CSYER|CNAME|WCSNAME|PC|CD|PV|PS|PROJP|LONPOLE|"
    r"LATPOLE|RESTFRQ|RESTFREQ|RESTWAV|RADESYS|RADECSYS|EQUINOX|EPOCH|MJD|DATE|OBSGEO|SPECSYS|SSYS|VELOSYS|"
    r"VELREF|ZSOURCE|VSOURCE|VELANGL|CPDIS|CQDIS|DP|DQ|D2IM|AXISCORR|A_|B_|AP_|BP_|TIME|TREF|PLEPHEM|JDREF|"
    r"JEPOCH|BEPOCH|TSTART|TSTOP|XPOSURE|TELAPSE|DOBS|CPERR|CQERR|DVERR|RSUN|DSUN|CRLN|CRLT|HGLN|HGLT|"
    # the DSS plate solution, which wcslib turns into a distortion
    r"PLT|PPO|AMDX|AMDY|CNPIX|XPIXELSZ|YPIXELSZ)")


class Sky:
    """What the index stores about the sky: ICRS centre, footprint and the frame as written."""

    def __init__(self, ra=None, dec=None, source=None, native=None, region=None, fov=None):
        self.ra, self.dec, self.source, self.native, self.region, self.fov = ra, dec, source, native, region, fov


def image_hdus(hdul):
    return [hdu for hdu in hdul if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2
            and all(hdu.header.get(f"NAXIS{i}", 0) > 0 for i in (1, 2))]


def wcs_header(header, bad=()):
    """The header's WCS cards alone (none that failed to parse), or None when it has no axis types
    and no DSS plate solution (so no celestial WCS)."""
    keys = header.keys()
    if not any(k.startswith("CTYPE") or k == "PLTRAH" for k in keys):
        return None
    return fits.Header([card for card in header.cards if WCS_KEYWORD.match(card.keyword) and card.keyword not in bad])


# Which astropy frames each pair of axis types may mean (astropy 5.2's wcs_to_celestial_frame
# returns ICRS for ELON/ELAT when wcslib has filled in RADESYS: the axis type is checked here).
EQUATORIAL = (ICRS, FK5, FK4, FK4NoETerms)


def celestial_frame(wcs):
    """The astropy frame of a celestial WCS; ValueError when its axes are not on the sky."""
    lng = wcs.wcs.ctype[wcs.wcs.lng][:4]
    if lng == "ELON":
        # Ecliptic coordinates of the mean ecliptic and equinox (FITS WCS paper II): for positions
        # without a distance, astropy's barycentric mean ecliptic is that rotation of the equator.
        equinox = wcs.wcs.equinox if np.isfinite(wcs.wcs.equinox) else 2000.0
        return BarycentricMeanEcliptic(equinox=f"J{equinox}")
    if lng == "SLON":
        return Supergalactic()
    frame = wcs_to_celestial_frame(wcs)
    if (lng == "RA--" and isinstance(frame, EQUATORIAL)) or (lng == "GLON" and isinstance(frame, Galactic)):
        return frame
    raise ValueError(f"axes {lng} are not in a sky frame astropy knows")


def frame_name(frame):
    """'icrs', 'fk5 J2000.000', 'fk4 B1950.000', 'galactic', ... (the native frame column)."""
    equinox = getattr(frame, "equinox", None)
    if equinox is None:
        return frame.name
    return f"{frame.name} {equinox.byear_str if isinstance(frame, (FK4, FK4NoETerms)) else equinox.jyear_str}"


def to_icrs(lon, lat, frame):
    """ICRS (ra, dec) arrays of positions in `frame` (no transformation when it is ICRS already)."""
    if isinstance(frame, ICRS):
        return np.asarray(lon, float) % 360.0, np.asarray(lat, float)
    icrs = SkyCoord(lon * u.deg, lat * u.deg, frame=frame).icrs
    return icrs.ra.deg, icrs.dec.deg


def axis_types(wcs):
    return "/".join(t.strip() for t in wcs.wcs.ctype if t.strip()) or "pixel"


def region_of(ra, dec):
    """(pgSphere polygon text, diameter in degrees) of the corner positions, or (None, reason)."""
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        return None, "a corner of the pixel grid lies outside the projection (an all-sky map?)"
    lon, lat = np.radians(ra), np.radians(dec)
    # astropy's own great-circle distance on plain arrays (a SkyCoord per corner cost most of describe())
    fov = float(np.degrees(np.max(angular_separation(lon[:2], lat[:2], lon[2:], lat[2:]))))
    if fov >= 179.0:
        return None, f"the corners span {fov:.1f} degrees: not a polygon smaller than a hemisphere"
    return "{" + ",".join(f"({a:.9f}d,{d:.9f}d)" for a, d in zip(ra, dec)) + "}", float(fov)


def from_wcs(hdul, bad, notes):
    """Sky of the first image HDU with a celestial WCS, or (None, what the WCS was if not celestial)."""
    other = None
    for hdu in image_hdus(hdul):
        index = hdul.index_of(hdu)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = wcs_header(hdu.header, bad.get(index, ()))
                if header is None:
                    continue
                wcs = WCS(header, fobj=hdul)
                if not (wcs.naxis == 2 and wcs.wcs.lng == 0 and wcs.wcs.lat == 1):
                    wcs = wcs.celestial  # a copy; needless when the WCS is already (lon, lat)
                if not wcs.has_celestial:
                    other = other or (index, axis_types(WCS(header, fobj=hdul)))
                    continue
                try:
                    frame = celestial_frame(wcs)
                except ValueError:  # helioprojective and other frames that are not on the sky
                    other = other or (index, axis_types(wcs))
                    continue
                nx, ny = hdu.header["NAXIS1"], hdu.header["NAXIS2"]
                pix = [[(nx - 1) / 2, (ny - 1) / 2], [-0.5, -0.5], [nx - 0.5, -0.5], [nx - 0.5, ny - 0.5], [-0.5, ny - 0.5]]
                world = wcs.all_pix2world(pix, 0)
                if not np.all(np.isfinite(world[0])):
                    raise ValueError("the centre of the pixel grid has no world coordinates")
                ra, dec = to_icrs(world[:, 0], world[:, 1], frame)
        except Exception as exc:  # noqa: BLE001 - a broken WCS is a note, not a failure
            notes.append(f"WCS of HDU {index} unusable: {exc}")
            continue
        if not -90 <= dec[0] <= 90:
            notes.append(f"WCS of HDU {index} gives dec {dec[0]}: unusable")
            continue
        region, fov = region_of(ra[1:], dec[1:])
        native = frame_name(frame)
        said = f"ra/dec from the WCS of HDU {index} ({axis_types(wcs)}, {native}" + ("" if native == "icrs" else " -> ICRS") + ")"
        if region is None:
            notes.append(f"{said}; footprint left empty: {fov}")
            fov = None
        else:
            notes.append(said)
        return Sky(float(ra[0]), float(dec[0]), "wcs", native, region, fov), None
    return None, other


@functools.lru_cache(maxsize=256)
def keyword_frame(cards):
    """The celestial frame wcslib reads from (key, value) pairs (CTYPEs, RADESYS, EQUINOX, EPOCH, ...)."""
    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    for key, value in cards:
        header[key] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return celestial_frame(WCS(header))


def frame_cards(header, ctypes=None):
    cards = tuple((k, header[k]) for k in FRAME_KEYS if k in header and header[k] is not None
                  and not isinstance(header[k], bool))
    return (tuple(zip(("CTYPE1", "CTYPE2"), ctypes)) if ctypes else ()) + cards


def angle(value, hours):
    """Degrees of a pointing value: a number (degrees) or sexagesimal text (RA in hours)."""
    if isinstance(value, str):
        text = value.strip()
        if re.search(r"[:\s hdms]", text):
            return Angle(text, unit=u.hourangle if hours else u.deg).degree
        value = text
    return float(value)


def pointing_pairs(headers):
    """(ra_key, dec_key, hdu index, ra value, dec value, ctypes) candidates, in order of preference."""
    for ra_key, dec_key in POINTING_KEYS:
        for index, header in enumerate(headers):
            if header.get(ra_key) not in (None, "") and header.get(dec_key) not in (None, ""):
                yield ra_key, dec_key, index, header[ra_key], header[dec_key], None
                break
    for index, header in enumerate(headers):
        ctypes = (str(header.get("CTYPE1", "")), str(header.get("CTYPE2", "")))
        if "CRVAL1" in header and "CRVAL2" in header and ctypes[0][:4] in ("RA--", "GLON", "ELON") \
                and ctypes[1][:4] in ("DEC-", "GLAT", "ELAT"):
            yield "CRVAL1", "CRVAL2", index, header["CRVAL1"], header["CRVAL2"], ctypes


def from_keywords(headers, notes):
    for ra_key, dec_key, index, ra_raw, dec_raw, ctypes in pointing_pairs(headers):
        where = f"{ra_key}/{dec_key} ({ra_raw!r}, {dec_raw!r})" + (f" in HDU {index}" if index else "")
        try:
            lon, lat = angle(ra_raw, hours=ctypes is None), angle(dec_raw, hours=False)
            if not (math.isfinite(lon) and -90 <= lat <= 90 and (ctypes or 0 <= lon < 360)):
                raise ValueError("out of range")
            frame = keyword_frame(frame_cards(headers[index], ctypes))
            ra, dec = to_icrs(np.array([lon]), np.array([lat]), frame)
        except Exception as exc:  # noqa: BLE001 - unreadable pointing: a note, then the next pair
            notes.append(f"{where} unreadable: {exc}")
            continue
        native = frame_name(frame)
        notes.append(f"ra/dec from {where}, {native}" + ("" if native == "icrs" else " -> ICRS"))
        return Sky(float(ra[0]), float(dec[0]), "keywords", native)
    return None


def locate(hdul, headers, bad, notes):
    """Sky of the file; ra/dec empty (with a note) when neither a sky WCS nor pointing keywords exist."""
    sky, other = from_wcs(hdul, bad, notes)
    if sky is not None:
        return sky
    if other is not None:
        notes.append(f"the WCS of HDU {other[0]} is not on the sky ({other[1]}): no ra/dec from it")
    sky = from_keywords(headers, notes)
    if sky is not None:
        return sky
    notes.append("no celestial WCS or pointing keywords: ra/dec left empty")
    return Sky(native=other[1] if other else None)
