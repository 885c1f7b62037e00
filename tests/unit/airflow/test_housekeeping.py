"""The Airflow side of housekeeping (runs in the Airflow image): db clean's command, task-log
pruning on an aged log folder, MailDev pruning on canned answers, the DAG's wiring."""
import json
import os
import time
import urllib.error
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from downlink_airflow import housekeeping
from downlink_airflow.config import Settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
DAY = 86400


def test_db_clean_command_has_the_retention_and_no_archive_tables():
    command = housekeeping.db_clean_command(90, dry_run=False, now=NOW)
    assert command[:3] == ["airflow", "db", "clean"]
    assert command[command.index("--clean-before-timestamp") + 1] == "2026-09-02T12:00:00+00:00"
    assert {"--skip-archive", "--yes", "--error-on-cleanup-failure"} <= set(command) and "--dry-run" not in command
    tables = command[command.index("--tables") + 1].split(",")
    assert "dag_run" in tables and "xcom" in tables and "dag" not in tables and "dag_version" not in tables
    assert housekeeping.db_clean_command(90, dry_run=True, now=NOW)[-1] == "--dry-run"
    with pytest.raises(ValueError, match="at least 1 day"):
        housekeeping.db_clean_command(0, dry_run=True)


def test_clean_metadata_runs_the_command_and_fails_loudly():
    calls = []

    def run(command, env, **kwargs):
        calls.append((command, env))
        return SimpleNamespace(returncode=0, stdout="Table dag_run: 12 rows to clean\n", stderr="")

    result = housekeeping.clean_metadata(30, True, "postgresql://airflow:pw@postgres/airflow", now=NOW, run=run)
    command, env = calls[0]
    assert command[-1] == "--dry-run" and "12 rows" in result["output"] and result["dry_run"]
    # Inside a task Airflow 3 has replaced the process's own setting: the command gets the real one.
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql://airflow:pw@postgres/airflow"
    assert housekeeping.clean_metadata(30, False, "", run=run)["skipped"] and len(calls) == 1

    def broken(command, **kwargs):
        return SimpleNamespace(returncode=1, stdout="", stderr="boom")

    with pytest.raises(RuntimeError, match="boom"):
        housekeeping.clean_metadata(30, False, "postgresql://x", now=NOW, run=broken)


def aged(path, days, data=b"log line\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = time.time() - days * DAY
    os.utime(path, (when, when))
    return path


@pytest.fixture
def logs(tmp_path):
    base = tmp_path / "logs"
    old = aged(base / "dag_id=daily_chain/run_id=old/task_id=index/attempt=1.log", 40)
    new = aged(base / "dag_id=daily_chain/run_id=new/task_id=index/attempt=1.log", 2)
    for folder in (old.parent, old.parent.parent):
        os.utime(folder, (time.time() - 40 * DAY,) * 2)
    outside = aged(tmp_path / "keep.log", 400)
    (base / "link.log").symlink_to(outside)
    os.utime(base / "link.log", (time.time() - 40 * DAY,) * 2, follow_symlinks=False)
    return base, old, new, outside


def test_log_dry_run_lists_and_deletes_nothing(logs):
    base, old, new, outside = logs
    report = housekeeping.prune_logs(str(base), 30, dry_run=True)
    assert sorted(report["items"]) == ["dag_id=daily_chain/run_id=old/task_id=index/attempt=1.log", "link.log"]
    assert old.exists() and new.exists() and os.path.lexists(base / "link.log")


def test_old_logs_go_new_ones_and_link_targets_stay(logs):
    base, old, new, outside = logs
    report = housekeeping.prune_logs(str(base), 30, dry_run=False)
    assert not old.exists() and not old.parent.exists(), "the emptied, old run folder goes too"
    assert new.exists()
    assert not os.path.lexists(base / "link.log") and outside.exists(), "a link goes, never its target"
    assert report["files"] == 2 and report["bytes"] == len(b"log line\n")


def test_logs_refuse_the_root():
    with pytest.raises(ValueError, match="refusing"):
        housekeeping.prune_logs("/", 30, dry_run=True)


def maildev(mails, fail=None):
    calls = []

    def call(method, url, timeout):
        calls.append((method, url))
        if fail:
            raise fail
        return json.dumps(mails).encode() if method == "GET" else b"true"
    return call, calls


def test_old_mails_are_deleted_through_the_api():
    mails = [{"id": "old1", "time": (NOW - timedelta(days=40)).isoformat().replace("+00:00", "Z"), "size": 100, "subject": "a"},
             {"id": "new1", "time": (NOW - timedelta(days=1)).isoformat(), "size": 50}]
    call, calls = maildev(mails)
    report = housekeeping.prune_mailbox("http://mail:1080/", 30, dry_run=False, now=NOW, call=call)
    assert calls == [("GET", "http://mail:1080/email"), ("DELETE", "http://mail:1080/email/old1")]
    assert report["mails"] == 1 and report["bytes"] == 100
    call, calls = maildev(mails)
    assert housekeeping.prune_mailbox("http://mail:1080", 30, dry_run=True, now=NOW, call=call)["mails"] == 1
    assert [m for m, _ in calls] == ["GET"], "a dry run deletes nothing"


def test_no_mail_catcher_is_skipped_cleanly():
    call, _ = maildev([], fail=urllib.error.URLError("Name or service not known"))
    report = housekeeping.prune_mailbox("http://mail:1080", 30, dry_run=False, call=call)
    assert "no mail catcher answers" in report["skipped"] and report["mails"] == 0
    assert housekeeping.prune_mailbox("", 30, dry_run=False)["skipped"]


def test_active_runs_pages_through_the_api(monkeypatch):
    import requests

    pages = [[{"dag_id": "d", "dag_run_id": f"r{i}"} for i in range(100)], [{"dag_id": "e", "dag_run_id": "x"}]]
    seen = []

    def get(url, params, headers, timeout):
        seen.append(dict(params)["offset"])
        return SimpleNamespace(raise_for_status=lambda: None, json=lambda: {"dag_runs": pages[len(seen) - 1]})

    monkeypatch.setattr(requests, "get", get)
    api = SimpleNamespace(base_url="http://api:8080", token=lambda: "t")
    runs = housekeeping.active_runs(api)
    assert len(runs) == 101 and runs[-1] == "e/x" and seen == [0, 100]


def test_settings_have_safe_defaults_and_forward_the_step_limits():
    cfg = Settings.from_env({"DOWNLINK_KEEP_SCRATCH_DAYS": "7"})
    assert (cfg.keep_metadata_days, cfg.keep_log_days, cfg.keep_mail_days) == (90, 30, 30)
    assert cfg.housekeeping_schedule == "0 12 * * *"
    assert cfg.step_env["DOWNLINK_KEEP_SCRATCH_DAYS"] == "7"
    with pytest.raises(ValueError):
        Settings.from_env({"DOWNLINK_KEEP_LOG_DAYS": "0"})


def test_summary_says_what_was_freed():
    lines = housekeeping.summary({"task_logs": {"dry_run": True, "files": 2, "bytes": 9},
                                  "mailbox": {"skipped": "no mail catcher", "mails": 0}, "metadata": None})
    assert lines == ["task_logs: would free 2 files, 9 bytes", "mailbox: skipped (no mail catcher)"]
