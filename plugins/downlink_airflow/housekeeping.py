"""The Airflow side of the housekeeping DAG (dags/housekeeping.py): what Airflow itself and the
mail catcher keep. The data volume is pruned by the astro step (`downlink housekeeping`).

  metadata   `airflow db clean` of the history (runs, task instances, XComs, ...) older than
             DOWNLINK_KEEP_METADATA_DAYS (default 90), without archive tables (a backup is the
             archive: tools/backup.sh); Airflow keeps each DAG's latest scheduled run
  task logs  files under Airflow's base_log_folder older than DOWNLINK_KEEP_LOG_DAYS (default 30)
  mailbox    MailDev's mails older than DOWNLINK_KEEP_MAIL_DAYS (default 30), through its REST API
             at DOWNLINK_MAIL_API_URL; skipped when no mail catcher answers (a real relay)

Each returns a small report (what was, or in a dry run would be, freed). Nothing here touches
the data volume or the archive database.
"""
import json
import os
import stat
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

DAY = 86400


def _check_days(name, days):
    if days < 1:
        raise ValueError(f"{name}={days:g}: keep at least 1 day (housekeeping never deletes today's)")


def cutoff(now, days):
    return now - timedelta(days=days)


# ----------------------------------------------------------------------------------------------
# metadata database
# ----------------------------------------------------------------------------------------------

# History only: runs, task instances and their logs, XComs, jobs, events. Not `dag` nor
# `dag_version` (the DAGs themselves; cleaning dag_version fails on rows task instances still
# reference, apache/airflow#56192).
TABLES = ("dag_run", "task_instance", "task_instance_history", "task_reschedule", "xcom", "log", "job",
          "import_error", "asset_event", "callback", "deadline", "trigger", "revoked_token")


def db_clean_command(keep_days, dry_run, now=None):
    """`airflow db clean` of the history older than keep_days; --dry-run only counts."""
    _check_days("DOWNLINK_KEEP_METADATA_DAYS", keep_days)
    before = cutoff(now or datetime.now(timezone.utc), keep_days)
    command = ["airflow", "db", "clean", "--clean-before-timestamp", before.isoformat(timespec="seconds"),
               "--tables", ",".join(TABLES), "--skip-archive", "--error-on-cleanup-failure", "--yes"]
    return command + (["--dry-run"] if dry_run else [])


def clean_metadata(keep_days, dry_run, conn, now=None, run=subprocess.run):
    """Run db clean against `conn` (DOWNLINK_METADATA_DB_CONN): inside a task, Airflow 3 has
    replaced the process's own database setting with one that refuses every connection."""
    command = db_clean_command(keep_days, dry_run, now)
    if not conn:
        return {"dry_run": dry_run, "skipped": "DOWNLINK_METADATA_DB_CONN is not set", "command": command}
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn}
    env.pop("AIRFLOW__CORE__SQL_ALCHEMY_CONN", None)
    done = run(command, capture_output=True, text=True, timeout=3600, env=env)
    output = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{output[-4000:]}")
    return {"dry_run": dry_run, "before": command[command.index("--clean-before-timestamp") + 1],
            "command": command, "output": output[-4000:]}


# ----------------------------------------------------------------------------------------------
# task logs
# ----------------------------------------------------------------------------------------------

def prune_logs(base_folder, keep_days, dry_run, now=None):
    """Files under base_folder last changed before the cutoff; then the folders left empty. Links
    are removed as links and never followed (a log folder holds no links of Airflow's own)."""
    _check_days("DOWNLINK_KEEP_LOG_DAYS", keep_days)
    base = os.path.abspath(base_folder)
    if base in ("/", os.path.expanduser("~")) or not os.path.isdir(base) or os.path.islink(base):
        raise ValueError(f"refusing to prune logs in {base_folder!r}: not a plain log folder")
    limit = cutoff(now or datetime.now(timezone.utc), keep_days).timestamp()
    report = {"folder": base, "dry_run": dry_run, "files": 0, "bytes": 0, "folders": 0, "items": []}
    emptied = set()  # folders we removed something from (their mtime is now ours)
    for here, dirs, names in os.walk(base, topdown=False, followlinks=False):
        old_folder = os.lstat(here).st_mtime < limit
        for name in names + [d for d in dirs if os.path.islink(os.path.join(here, d))]:
            path = os.path.join(here, name)
            st = os.lstat(path)
            if st.st_mtime >= limit:
                continue
            if not dry_run:
                os.unlink(path)
                emptied.add(here)
            report["files"] += 1
            report["bytes"] += st.st_size if stat.S_ISREG(st.st_mode) else 0
            report["items"].append(os.path.relpath(path, base))
        if here != base and not dry_run and (old_folder or here in emptied) and not os.listdir(here):
            try:
                os.rmdir(here)
            except OSError:
                continue  # a task just wrote into it
            emptied.add(os.path.dirname(here))
            report["folders"] += 1
    return report


# ----------------------------------------------------------------------------------------------
# mailbox (MailDev)
# ----------------------------------------------------------------------------------------------

def _parse_date(text):
    try:
        when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _call(method, url, timeout):
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as reply:
        return reply.read()


def prune_mailbox(base_url, keep_days, dry_run, now=None, call=_call, timeout=10):
    """Mails older than the cutoff, deleted one by one (DELETE /email/:id). Without a mail catcher
    (empty URL, or nothing answers there: a real relay) this is skipped, not failed."""
    _check_days("DOWNLINK_KEEP_MAIL_DAYS", keep_days)
    report = {"url": base_url, "dry_run": dry_run, "mails": 0, "bytes": 0, "items": []}
    if not base_url:
        return {**report, "skipped": "DOWNLINK_MAIL_API_URL is empty"}
    base = base_url.rstrip("/")
    try:
        mails = json.loads(call("GET", f"{base}/email", timeout))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {**report, "skipped": f"no mail catcher answers at {base}: {exc}"}
    if not isinstance(mails, list):
        return {**report, "skipped": f"{base}/email is not MailDev's list of mails"}
    limit = cutoff(now or datetime.now(timezone.utc), keep_days)
    for mail in mails:
        when = _parse_date(mail.get("time") or mail.get("date"))  # time: when MailDev received it
        if not mail.get("id") or when is None or when >= limit:
            continue
        if not dry_run:
            call("DELETE", f"{base}/email/{urllib.request.quote(str(mail['id']), safe='')}", timeout)
        report["mails"] += 1
        report["bytes"] += int(mail.get("size") or 0)
        report["items"].append({"id": mail["id"], "date": when.isoformat(), "subject": mail.get("subject")})
    return report


# ----------------------------------------------------------------------------------------------
# runs still active (their scratch is kept by the astro step)
# ----------------------------------------------------------------------------------------------

def active_runs(api):
    """["dag/run", ...] of every queued or running DAG run, through the Airflow API (a task may
    not read the metadata database itself in Airflow 3)."""
    import requests

    found, offset = [], 0
    while True:
        reply = requests.get(f"{api.base_url}/api/v2/dags/~/dagRuns",
                             params=[("state", "running"), ("state", "queued"), ("limit", 100), ("offset", offset)],
                             headers={"Authorization": f"Bearer {api.token()}"}, timeout=30)
        reply.raise_for_status()
        page = reply.json()["dag_runs"]
        found += [f"{r['dag_id']}/{r['dag_run_id']}" for r in page]
        if len(page) < 100:
            return found
        offset += len(page)


def summary(parts):
    """One line per part: what was (or would be) freed."""
    lines = []
    for name, part in parts.items():
        if not isinstance(part, dict):
            continue
        verb = "would free" if part.get("dry_run") else "freed"
        if part.get("skipped"):
            lines.append(f"{name}: skipped ({part['skipped']})")
        elif "mails" in part:
            lines.append(f"{name}: {verb} {part['mails']} mails, {part['bytes']} bytes")
        elif "files" in part:
            lines.append(f"{name}: {verb} {part['files']} files, {part['bytes']} bytes")
        elif "before" in part:
            lines.append(f"{name}: db clean before {part['before']}" + (" (dry run)" if part.get("dry_run") else ""))
    return lines
