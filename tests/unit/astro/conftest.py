# Runs inside the astro image (make test-unit-astro), where the step package is on PYTHONPATH.
import os

import pytest

REAL_FITS = os.environ.get("DOWNLINK_REAL_FITS", "/fits")


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A private data volume for one test."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("DOWNLINK_DATA", str(root))
    return root


@pytest.fixture
def real_fits():
    """The real files of ../shared/data/fits (mounted at /fits by make test-unit-astro)."""
    if not os.path.isdir(REAL_FITS):
        pytest.skip(f"real FITS files not mounted at {REAL_FITS}")
    return REAL_FITS
