"""Is a file complete, readable FITS? The download step's check, with astropy.io.fits alone (no
coordinates or time machinery: the step that only checks files starts in a fraction of the time).
Plain, gzip-compressed and tile-compressed files are read as astropy opens them."""
import gzip
import warnings
import zlib

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from downlink import StepError

GZIP_MAGIC = b"\x1f\x8b"


def open_fits(path):
    """Open a FITS file (plain, gzip, tile-compressed) and read every HDU's header; a clear
    StepError if it is not valid FITS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for broken files
        raise StepError(f"{path}: not a readable FITS file: {exc}") from exc
    if len(hdul) == 0:
        hdul.close()
        raise StepError(f"{path}: not a readable FITS file: no HDU")
    return hdul


def is_gzip(path):
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def gunzipped_size(path):
    """Bytes of FITS inside a gzip file, reading it to the end: a cut-short or corrupt stream
    (no end-of-stream marker, a CRC or length mismatch) is a StepError."""
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                total += len(block)
    except (EOFError, OSError, zlib.error) as exc:
        raise StepError(f"{path}: truncated or corrupt gzip: {exc}") from exc
    return total


def check_complete(path, hdul, size):
    """Every HDU's data must lie inside the FITS bytes (size: of the decompressed stream for a
    gzip file). A truncated download fails here."""
    for index, hdu in enumerate(hdul):
        info = hdu.fileinfo()
        if info is None:
            continue
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise StepError(f"{path}: truncated: HDU {index} needs {end} bytes, the file has {size}"
                            + (" (decompressed)" if info.get("file") is not None and getattr(info["file"], "compression", None) else ""))


def verify_fits(path, size):
    """Raise StepError unless path is complete, readable FITS: plain, gzip-compressed (the whole
    stream is decompressed and its HDUs must fit in what it holds) or tile-compressed (astropy
    reads the compressed image's header; its table must lie inside the file). The bytes are never
    changed: the archive keeps the file as published."""
    if is_gzip(path):
        size = gunzipped_size(path)
    hdul = open_fits(path)
    try:
        check_complete(path, hdul, size)
    finally:
        hdul.close()
