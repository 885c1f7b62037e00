"""downlink housekeeping: aged fixtures are pruned, fresh ones, unarchived staging and the archive
stay, a dry run changes nothing, and nothing outside the allowed areas can be deleted."""
import hashlib
import json
import os
import time

import pytest

from downlink import StepError, cli
from downlink.housekeeping import ALLOWED_AREAS, Pruner, check_deletable, housekeep

DAY = 86400
DAYS = {"keep_scratch_days": 14, "keep_staging_days": 30, "keep_quarantine_days": 90}


def write(path, data=b"x" * 100, age_days=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    age(path, age_days)
    return path


def age(path, days):
    when = time.time() - days * DAY
    os.utime(path, (when, when), follow_symlinks=False)


def snapshot(root):
    """Every path under root with its size and mtime: what a dry run must leave as it was."""
    found = {}
    for here, dirs, names in os.walk(root):
        for name in dirs + names:
            p = os.path.join(here, name)
            st = os.lstat(p)
            found[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def volume(data_root):
    """A data volume with an aged and a fresh item in every area housekeeping looks at."""
    night = "2026-01-10"
    # Scratch: an old finished run, an old run still active, a run with one fresh file.
    write(data_root / "work/daily_chain/old_run/a.fits", b"a" * 300, 40)
    age(data_root / "work/daily_chain/old_run", 40)
    write(data_root / "work/daily_chain/still_running/a.fits", b"b" * 50, 40)
    age(data_root / "work/daily_chain/still_running", 40)
    write(data_root / "work/daily_chain/recent/a.fits", b"c" * 50, 40)
    write(data_root / "work/daily_chain/recent/new.txt", b"d", 0)
    # Archive: frame1 and frame2 are archived with their digests; raw/ is the archive itself.
    archived = {"frame1.fits": b"1" * 1000, "frame2.fits": b"2" * 1000}
    for name, data in archived.items():
        write(data_root / "raw" / night / name, data, 60)
    (data_root / "raw" / night / ".sha256.json").write_text(
        json.dumps({n: hashlib.sha256(d).hexdigest() for n, d in archived.items()}))
    # Staging: an old archived leftover; an old file that differs from the archive; an old
    # unarchived file; a fresh archived one; an old partial download.
    write(data_root / "staging" / night / "frame1.fits", archived["frame1.fits"], 60)
    write(data_root / "staging" / night / "frame2.fits", b"corrupt" * 10, 60)
    write(data_root / "staging" / night / "frame3.fits", b"3" * 100, 60)
    write(data_root / "staging" / night / ".frame4.fits.part", b"4" * 10, 60)
    write(data_root / "staging/2026-11-01/frame1.fits", b"fresh", 1)
    # Quarantine: old bytes with their record; fresh bytes with theirs.
    q = data_root / "quarantine" / night
    write(q / "bad.fits", b"q" * 400, 120)
    record = {"night": night, "filename": "bad.fits", "stage": "download", "reason": "sha256 mismatch",
              "path": f"quarantine/{night}/bad.fits", "recorded_at": "2025-08-01T00:00:00+00:00"}
    (q / "bad.fits.download.reason.json").write_text(json.dumps(record))
    write(q / "new.fits", b"n" * 400, 2)
    (q / "new.fits.download.reason.json").write_text(json.dumps({**record, "filename": "new.fits", "path": f"quarantine/{night}/new.fits",
                                                                 "recorded_at": "2099-01-01T00:00:00+00:00"}))
    # Never touched: reduced/, masters/, however old.
    write(data_root / "reduced" / night / "r.fits", b"r", 400)
    write(data_root / "masters" / night / "bias.fits", b"m", 400)
    return data_root


def test_dry_run_deletes_nothing_and_lists_what_it_would(volume):
    before = snapshot(volume)
    report = housekeep(str(volume), dry_run=True, active_runs={"daily_chain/still_running"}, **DAYS)
    assert snapshot(volume) == before
    assert report["dry_run"] is True
    items = {a: [i["path"] for i in v["items"]] for a, v in report["areas"].items()}
    assert items == {"work": ["work/daily_chain/old_run"], "staging": ["staging/2026-01-10/frame1.fits"],
                     "quarantine": ["quarantine/2026-01-10/bad.fits"]}
    assert report["total"] == {"files": 3, "bytes": 300 + 1000 + 400}


def test_aged_are_pruned_fresh_unarchived_and_archive_stay(volume):
    raw_before = snapshot(volume / "raw")
    report = housekeep(str(volume), dry_run=False, active_runs={"daily_chain/still_running"}, **DAYS)
    assert not (volume / "work/daily_chain/old_run").exists()
    assert (volume / "work/daily_chain/still_running/a.fits").exists()  # active, however old
    assert (volume / "work/daily_chain/recent/a.fits").exists()  # changed yesterday
    night = volume / "staging/2026-01-10"
    assert not (night / "frame1.fits").exists()
    assert (night / "frame2.fits").exists(), "differs from the archived bytes: kept"
    assert (night / "frame3.fits").exists(), "not archived: kept"
    assert (night / ".frame4.fits.part").exists()
    assert (volume / "staging/2026-11-01/frame1.fits").exists()
    assert snapshot(volume / "raw") == raw_before
    assert (volume / "reduced/2026-01-10/r.fits").exists() and (volume / "masters/2026-01-10/bias.fits").exists()
    assert report["areas"]["work"]["bytes"] == 300 and report["areas"]["staging"]["files"] == 1


def test_quarantine_bytes_go_the_record_stays_marked(volume):
    housekeep(str(volume), dry_run=False, **DAYS)
    q = volume / "quarantine/2026-01-10"
    assert not (q / "bad.fits").exists()
    record = json.loads((q / "bad.fits.download.reason.json").read_text())
    assert record["pruned_at"] and record["pruned_bytes"] == 400 and record["reason"] == "sha256 mismatch"
    assert (q / "new.fits").exists()
    assert "pruned_at" not in json.loads((q / "new.fits.download.reason.json").read_text())
    again = housekeep(str(volume), dry_run=False, **DAYS)  # nothing left to do, record not rewritten
    assert again["areas"]["quarantine"]["files"] == 0


def test_refuses_anything_outside_the_allowed_areas(data_root):
    root = str(data_root)
    assert set(ALLOWED_AREAS) == {"work", "staging", "quarantine"}
    for rel in ("raw/2026-01-10/frame1.fits", "reduced/n/r.fits", "masters/n/bias.fits", "catalogs/n/c",
                "reports/n/index.html", "work", "staging", "../elsewhere", "/etc/passwd", "work/../raw/x"):
        with pytest.raises(StepError, match="refuses"):
            check_deletable(root, os.path.join(root, rel))
    (data_root / "work/d/r").mkdir(parents=True)
    assert check_deletable(root, os.path.join(root, "work/d/r"))


def test_never_follows_a_link_out_of_its_area(data_root):
    raw = data_root / "raw/2026-01-10"
    write(raw / "frame1.fits", b"keep", 60)
    # work/ itself a link into the archive: refused.
    (data_root / "work").symlink_to(data_root / "raw")
    with pytest.raises(StepError, match="refuses"):
        check_deletable(str(data_root), str(data_root / "work/2026-01-10/frame1.fits"))
    os.unlink(data_root / "work")
    # A link inside an old run's scratch: the link goes, the archived file stays.
    run = data_root / "work/dag/run"
    run.mkdir(parents=True)
    (run / "to-raw").symlink_to(raw)
    (run / "file-link").symlink_to(raw / "frame1.fits")
    for p in (run / "to-raw", run / "file-link", run):
        age(p, 40)
    housekeep(str(data_root), dry_run=False, **DAYS)
    assert not os.path.lexists(run)
    assert (raw / "frame1.fits").read_bytes() == b"keep"


def test_pruner_refuses_raw_even_when_asked(data_root):
    write(data_root / "raw/n/frame.fits", b"x", 400)
    with pytest.raises(StepError):
        Pruner(str(data_root), dry_run=False).remove_file("staging", str(data_root / "raw/n/frame.fits"))
    assert (data_root / "raw/n/frame.fits").exists()


def test_a_keep_of_less_than_a_day_is_refused(data_root):
    with pytest.raises(StepError, match="at least 1"):
        housekeep(str(data_root), dry_run=True, **{**DAYS, "keep_staging_days": 0})


def test_cli_dry_run_prints_and_writes_the_report(volume, capsys, monkeypatch):
    monkeypatch.delenv("DOWNLINK_ARCHIVE_DSN", raising=False)
    monkeypatch.setenv("DOWNLINK_KEEP_SCRATCH_DAYS", "100")  # the setting is the flag's default
    assert cli.main(["housekeeping", "--dry-run"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[:out.rindex("}") + 1])
    assert report["keep_days"]["work"] == 100 and report["areas"]["work"]["files"] == 0
    assert (volume / report["report"]).is_file() and report["report"].startswith("housekeeping/")
    assert "would free" in out
    assert (volume / "quarantine/2026-01-10/bad.fits").exists()


def test_cli_takes_the_dags_active_runs_and_dry_run_value(volume, capsys, monkeypatch):
    monkeypatch.delenv("DOWNLINK_ARCHIVE_DSN", raising=False)
    assert cli.main(["housekeeping", "--dry-run=True", "--active-runs", '["daily_chain/old_run"]']) == 0
    out = capsys.readouterr().out
    report = json.loads(out[:out.rindex("}") + 1])
    assert report["dry_run"] is True  # old_run is active: only still_running (not said to be) would go
    assert [i["path"] for i in report["areas"]["work"]["items"]] == ["work/daily_chain/still_running"]
    with pytest.raises(SystemExit):
        cli.main(["housekeeping", "--active-runs", "not json"])


def test_cli_without_dry_run_prunes(volume, capsys, monkeypatch):
    monkeypatch.delenv("DOWNLINK_ARCHIVE_DSN", raising=False)
    assert cli.main(["housekeeping", "--dry-run=false", "--active-runs", "null"]) == 0
    assert not (volume / "work/daily_chain/old_run").exists()
    assert "freed 4 files" in capsys.readouterr().out  # both old runs: no run was said to be active


def test_the_quarantine_row_stays_and_is_marked_pruned(volume, monkeypatch):
    """In the archive database (make test-unit-astro starts one): the row of a pruned file is kept,
    gets pruned_at, and the index's next sync of the night keeps it."""
    from downlink import index
    from downlink.housekeeping import mark_rows
    from synthetic_frames import archive_connection, forget_night

    night = "2026-01-10"
    with archive_connection() as conn:
        forget_night(conn, night)
        with conn.transaction():
            index.sync_quarantine(conn, night)
    housekeep(str(volume), dry_run=False, **DAYS)
    assert mark_rows(str(volume)) == 1
    assert mark_rows(str(volume)) == 0, "already marked"
    with archive_connection() as conn:
        rows = dict(conn.execute("SELECT filename, pruned_at IS NOT NULL FROM quarantine WHERE night = %s", (night,)).fetchall())
        assert rows == {"bad.fits": True, "new.fits": False}
        with conn.transaction():
            index.sync_quarantine(conn, night)
        again = dict(conn.execute("SELECT filename, pruned_at IS NOT NULL FROM quarantine WHERE night = %s", (night,)).fetchall())
        assert again == rows
        forget_night(conn, night)
