#!/usr/bin/env python3
"""job-alive JOB_TYPE: exit 0 when this container's Airflow job (DagProcessorJob, TriggererJob)
is running and heartbeated within its health-check threshold; else exit 1 with the reason.

The same test as `airflow jobs check --job-type JOB_TYPE --hostname $HOSTNAME` (Airflow's
Job.is_alive: state running, last heartbeat newer than the threshold), as one SQL query. The
CLI imports all of Airflow, about 3 s of CPU per check and container; run every few seconds in
every stack, that was a large share of an idle machine. Thresholds: Airflow's own settings
([dag_processor] health_check_threshold, [triggerer] triggerer_health_check_threshold), read
from the environment like Airflow reads them, with Airflow's defaults.
"""
import os
import socket
import sys
from urllib.parse import unquote, urlsplit

import psycopg2

THRESHOLDS = {  # job type -> (environment variable, Airflow's default in seconds)
    "DagProcessorJob": ("AIRFLOW__DAG_PROCESSOR__HEALTH_CHECK_THRESHOLD", 30.0),
    "TriggererJob": ("AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD", 30.0),
}
QUERY = ("SELECT extract(epoch FROM now() - latest_heartbeat) FROM job "
         "WHERE job_type = %s AND hostname = %s AND state = 'running' ORDER BY latest_heartbeat DESC LIMIT 1")


def main(argv):
    if len(argv) != 2 or argv[1] not in THRESHOLDS:
        print(f"usage: job-alive {'|'.join(THRESHOLDS)}", file=sys.stderr)
        return 2
    job_type = argv[1]
    variable, default = THRESHOLDS[job_type]
    threshold = float(os.environ.get(variable) or default)
    url = urlsplit(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    hostname = os.environ.get("HOSTNAME") or socket.getfqdn()
    try:
        with psycopg2.connect(host=url.hostname, port=url.port or 5432, dbname=url.path.lstrip("/"),
                              user=unquote(url.username or ""), password=unquote(url.password or ""),
                              connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute(QUERY, (job_type, hostname))
            row = cur.fetchone()
    except psycopg2.Error as exc:
        print(f"job-alive: the metadata database does not answer: {exc}".strip(), file=sys.stderr)
        return 1
    if row is None:
        print(f"job-alive: no running {job_type} on {hostname}", file=sys.stderr)
        return 1
    if row[0] > threshold:
        print(f"job-alive: {job_type} on {hostname} last heartbeat {row[0]:.0f} s ago (threshold {threshold:.0f} s)",
              file=sys.stderr)
        return 1
    print(f"{job_type} on {hostname} alive (heartbeat {row[0]:.1f} s ago)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
