# Runs inside the astro image (make test-unit-astro), where the step package is on PYTHONPATH.
