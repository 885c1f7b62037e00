"""Downlink's Airflow plugins: the one file Airflow's plugin manager loads from plugins/
(.airflowignore keeps it out of the downlink_airflow package)."""
from downlink_airflow.reports_plugin import DownlinkReportsPlugin

__all__ = ["DownlinkReportsPlugin"]
