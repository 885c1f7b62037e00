import pytest

from downlink import StepError
from downlink.iraf_imstat import FIELDS, parse_imstat_line


def test_parses_an_unformatted_imstatistics_row():
    row = "dev$pix  262144  108.3154  88.74712  49.39904  131.298  49.59395  5536.603  -1.  19936."
    stats = parse_imstat_line(row, "dev$pix")
    assert stats["npix"] == 262144 and isinstance(stats["npix"], int)
    assert stats["mean"] == pytest.approx(108.3154)
    assert stats["min"] == -1.0 and stats["max"] == 19936.0
    assert set(stats) == set(FIELDS)


def test_indef_becomes_none():
    stats = parse_imstat_line("x 1 5. 5. 5. INDEF INDEF INDEF 5. 5.", "x")
    assert stats["stddev"] is None and stats["mean"] == 5.0


def test_unexpected_output_is_a_clear_error():
    with pytest.raises(StepError, match="unexpected output"):
        parse_imstat_line("ERROR: no such image", "nothere.fits")
