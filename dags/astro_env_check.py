"""astro_env_check: proves the astronomy environment works unattended, in three steps.

1. versions: import astropy, ccdproc, photutils, ... in the astro image and print their versions.
2. iraf_imstat: run IRAF's imstatistics on dev$pix (the M51 test image IRAF ships) via PyRAF.
3. store_imstat: write those numbers into the archive database (table env_check_imstat).
"""
import pendulum

from airflow.sdk import DAG
from downlink_airflow.steps import RUN_DIR, astro_step

with DAG(
    dag_id="astro_env_check",
    description="Astronomy stack, IRAF/PyRAF and the archive database, checked end to end",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["downlink", "diagnostics"],
):
    imstat_json = f"{RUN_DIR}/imstat.json"
    versions = astro_step("versions", ["downlink", "versions"])
    imstat = astro_step("iraf_imstat", ["downlink", "iraf-imstat", "--image", "dev$pix", "--out", imstat_json])
    store = astro_step("store_imstat", ["downlink", "store-imstat", "--in", imstat_json, "--run-id", "{{ run_id }}"])
    versions >> imstat >> store
