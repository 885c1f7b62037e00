"""`python -m downlink_airflow.crontab import-crontab FILE ...`: the same as `python -m downlink_airflow.cli import-crontab`."""
import sys

from downlink_airflow.crontab.cli import main

sys.exit(main())
