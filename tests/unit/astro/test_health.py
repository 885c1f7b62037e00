"""`downlink health`: the storage and freshness checks of the hourly diagnostics (no database)."""
import contextlib
from datetime import datetime, timedelta, timezone

import pytest

from downlink import StepError, health


def test_volumes_default_to_the_data_volume_and_parse_name_path(monkeypatch, tmp_path):
    monkeypatch.setenv("DOWNLINK_DATA", str(tmp_path))
    assert health.volumes(None)[0] == ("data", str(tmp_path))
    assert health.volumes(["db=/x", "archive=/y"]) == [("db", "/x"), ("archive", "/y")]
    with pytest.raises(StepError, match="expected NAME=PATH"):
        health.volumes(["nonsense"])


def test_free_space_breach_names_the_volume_and_the_threshold(tmp_path):
    ok, = health.space_checks([("data", str(tmp_path))], 0)
    assert ok["ok"] and ok["check_name"] == "disk_space:data"
    bad, missing = health.space_checks([("data", str(tmp_path)), ("database", str(tmp_path / "absent"))], 1e6)
    assert not bad["ok"] and bad["message"].startswith("data volume: ")
    assert bad["message"].endswith("-- below DOWNLINK_MIN_FREE_GB=1000000")
    assert not missing["ok"] and "is not mounted" in missing["message"]


class FakeConn:
    def __init__(self, newest):
        self.newest = newest

    def execute(self, sql):
        assert "max(indexed_at)" in sql
        return self

    def fetchone(self):
        return (self.newest,)


def test_freshness():
    now = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    assert health.freshness_check(FakeConn(now - timedelta(hours=2)), 36, now)["ok"]
    stale = health.freshness_check(FakeConn(now - timedelta(hours=50)), 36, now)
    assert not stale["ok"] and "50.0 h ago" in stale["message"] and "DOWNLINK_FRESHNESS_HOURS=36" in stale["message"]
    assert health.freshness_check(FakeConn(None), 36, now)["message"] == "no frame indexed yet"
    assert health.freshness_check(FakeConn(None), 0, now)["ok"]


def test_numbers_read_as_written():
    assert health.number(1000000.0) == "1000000" and health.number(0.5) == "0.5"


class FakeSpaceConn:
    """The archive connection as health.py uses it for downlink_ops.data_volume_space()."""

    def __init__(self, row=None, error=None):
        self.row, self.error, self.sql = row, error, []

    @contextlib.contextmanager
    def transaction(self):
        yield

    def execute(self, sql):
        self.sql.append(sql)
        if self.error:
            raise self.error
        return self

    def fetchone(self):
        return self.row


GIB = 1024 ** 3


def test_database_space_comes_from_the_postgres_service_with_the_same_threshold_and_message():
    conn = FakeSpaceConn((20 * GIB, 5 * GIB, "/var/lib/postgresql/data"))
    ok = health.database_space_check(conn, 1)
    assert conn.sql == ["SELECT total_bytes, free_bytes, mount_point FROM downlink_ops.data_volume_space()"]
    assert ok["ok"] and ok["check_name"] == "disk_space:database"
    assert ok["message"] == ("database volume: 5.0 GB free of 20.0 GB on /var/lib/postgresql/data "
                             "(in the postgres service) (threshold 1 GB)")
    bad = health.database_space_check(FakeSpaceConn((20 * GIB, 5 * GIB, "/var/lib/postgresql/data")), 1e6)
    assert not bad["ok"] and bad["message"].startswith("database volume: 5.0 GB free")
    assert bad["message"].endswith("-- below DOWNLINK_MIN_FREE_GB=1000000")
    edge = health.database_space_check(FakeSpaceConn((2 * GIB, GIB // 2, "/pg")), 0.5)
    assert edge["ok"]  # at the threshold is enough, as for the mounted volumes


def test_database_space_that_cannot_be_measured_is_a_breach_saying_why():
    import psycopg

    conn = FakeSpaceConn(error=psycopg.errors.UndefinedFunction("function downlink_ops.data_volume_space() does not exist"))
    r = health.database_space_check(conn, 1)
    assert not r["ok"] and r["check_name"] == "disk_space:database"
    assert "does not exist" in r["message"] and "restart it" in r["message"]


def test_the_database_volume_is_not_looked_for_in_the_step(monkeypatch, tmp_path):
    monkeypatch.setenv("DOWNLINK_DATA", str(tmp_path))
    assert [name for name, _ in health.volumes(None)] == ["data"]
