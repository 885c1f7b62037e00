# Runs inside the astro image (make test-unit-astro), where the step package is installed.
import os

import pytest

REAL_FITS = os.environ.get("DOWNLINK_REAL_FITS", "/fits")
REAL_FITS_MORE = os.environ.get("DOWNLINK_REAL_FITS_MORE", "/fits-more")


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A private data volume for one test."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("DOWNLINK_DATA", str(root))
    return root


def mounted(folder, shared):
    # Missing test data is a failure, not a skip: a run without the real files tests nothing real.
    if not os.path.isdir(folder) or not os.listdir(folder):
        pytest.fail(f"real FITS files not mounted at {folder} (make test-unit-astro mounts ../shared/data/{shared})")
    return folder


@pytest.fixture
def real_fits():
    """The real files of ../shared/data/fits (mounted at /fits by make test-unit-astro)."""
    return mounted(REAL_FITS, "fits")


@pytest.fixture
def real_fits_more():
    """The real files of ../shared/data/fits-more (mounted at /fits-more by make test-unit-astro)."""
    return mounted(REAL_FITS_MORE, "fits-more")
