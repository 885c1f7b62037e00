"""Backups (tools/backup.sh, `make backup` / `make restore`) on the real test stack: dump both
databases, restore them into new databases and find the same rows; a corrupt dump is refused;
a full restore swaps the databases under a stopped Airflow and brings it back healthy."""
import hashlib
import json
import os
import shutil
import subprocess

import psycopg
import pytest

import dagrun
from conftest import ROOT, SAMPLE_NIGHT, TEST_ENV

# The archive's tables (migrations 0001, 0002) and the migrations table.
ARCHIVE_TABLES = ("observations", "quarantine", "calibration_masters", "reduced_frames", "iraf_stats",
                  "frame_qc", "diagnostics", "env_check_imstat", "schema_migrations")
SUFFIX = "e2etest"
M31 = (10.6847, 41.2690)
BACKUP_SH = os.path.join(ROOT, "tools", "backup.sh")


def backup_sh(stack, *args, env=None, timeout=900):
    return subprocess.run([BACKUP_SH, *args], cwd=ROOT, env=env or stack.env, capture_output=True,
                          text=True, timeout=timeout)


def connect(dbname, user="archive"):
    password = dagrun.setting("ARCHIVE_DB_PASSWORD" if user == "archive" else "AIRFLOW_DB_PASSWORD")
    return psycopg.connect(host="127.0.0.1", port=int(TEST_ENV["DOWNLINK_DB_PORT"]), dbname=dbname, user=user,
                           password=password, connect_timeout=10, autocommit=True)


def superuser_sql(stack, sql, db="postgres"):
    return stack.compose("exec", "-T", "postgres", "psql", "-U", "postgres", "-d", db, "-AtqX",
                         "-v", "ON_ERROR_STOP=1", "-c", sql).stdout.split()


def databases(stack):
    return set(superuser_sql(stack, "SELECT datname FROM pg_database"))


def drop_databases(stack, *names):
    for name in names:
        stack.compose("exec", "-T", "postgres", "dropdb", "-U", "postgres", "--if-exists", "--force", name,
                      check=False)


def counts(conn, tables):
    return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def public_tables(conn):
    return sorted(r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))


def observations(conn):
    return set(conn.execute("SELECT path, sha256 FROM observations").fetchall())


@pytest.fixture(scope="module")
def archive_with_rows(stack, sample_night):
    """The archive holds the whole sample night: the session's sample-night run succeeded."""
    run_id, state, states = sample_night
    assert state == "success", (run_id, states)
    with stack.archive_db() as conn:
        assert conn.execute("SELECT count(*) FROM observations WHERE night = %s", (SAMPLE_NIGHT,)).fetchone()[0] > 0


@pytest.fixture(scope="module")
def backup(stack, archive_with_rows, tmp_path_factory):
    """(backup directory, its manifest, dump's stdout)."""
    parent = tmp_path_factory.mktemp("backups")
    result = backup_sh(stack, "dump", str(parent))
    assert result.returncode == 0, result.stderr + result.stdout
    made = sorted(os.listdir(parent))
    assert len(made) == 1, made  # the finished backup only: no partial directory left
    directory = os.path.join(parent, made[0])
    with open(os.path.join(directory, "MANIFEST.json")) as fh:
        return directory, json.load(fh), result.stdout


@pytest.fixture(scope="module")
def restored(stack, backup):
    """The backup restored with --into-new (dropped again at the end)."""
    names = (f"archive_{SUFFIX}", f"airflow_{SUFFIX}")
    drop_databases(stack, *names)
    try:
        result = backup_sh(stack, "restore", backup[0], "--into-new", SUFFIX)
        assert result.returncode == 0, result.stderr + result.stdout
        yield result.stdout
    finally:
        drop_databases(stack, *names)


def test_dump_writes_a_complete_manifest(backup):
    directory, manifest, stdout = backup
    assert sorted(os.listdir(directory)) == ["MANIFEST.json", "airflow.dump", "archive.dump"]
    for name, meta in manifest["files"].items():
        with open(os.path.join(directory, name), "rb") as fh:
            data = fh.read()
        assert data[:5] == b"PGDMP"  # pg_dump's custom format
        assert meta["bytes"] == len(data) and meta["sha256"] == hashlib.sha256(data).hexdigest()
    archive = manifest["databases"]["archive"]
    assert set(ARCHIVE_TABLES) <= set(archive["row_counts"]), archive["row_counts"]
    assert archive["row_counts"]["observations"] > 0
    assert {"q3c", "pg_sphere"} <= set(archive["extensions"])
    assert archive["owner"] == "archive" and manifest["databases"]["airflow"]["owner"] == "airflow"
    airflow = manifest["databases"]["airflow"]["row_counts"]
    assert airflow["dag_run"] > 0 and airflow["task_instance"] > 0
    assert manifest["downlink_tag"] == dagrun.read_dotenv()["DOWNLINK_TAG"]
    assert manifest["project"] == TEST_ENV["DOWNLINK_PROJECT"]
    assert "archive.dump" in stdout and "backup complete" in stdout


def test_manifest_counts_are_the_archive_counts(stack, backup):
    with stack.archive_db() as conn:
        live = counts(conn, public_tables(conn))
    assert backup[1]["databases"]["archive"]["row_counts"] == live


def test_restored_archive_has_the_same_rows(stack, backup, restored):
    with stack.archive_db() as live, connect(f"archive_{SUFFIX}") as copy:
        tables = public_tables(live)
        assert public_tables(copy) == tables and set(ARCHIVE_TABLES) <= set(tables)
        assert counts(copy, tables) == counts(live, tables)
        assert observations(copy) == observations(live) and observations(copy)


def test_restored_archive_can_cone_search_and_be_written_by_its_role(stack, restored):
    cone = ("SELECT count(*) FROM observations WHERE night = %s AND q3c_radial_query(ra, dec, %s, %s, 0.25)",
            (SAMPLE_NIGHT, *M31))
    with stack.archive_db() as live, connect(f"archive_{SUFFIX}") as copy:
        assert copy.execute(*cone).fetchone()[0] == live.execute(*cone).fetchone()[0] == 4
        assert copy.execute("SELECT q3c_dist(0, 0, 1, 0)").fetchone()[0] == pytest.approx(1.0)
        assert copy.execute("SELECT area(scircle '<(0d,0d),1d>') > 0").fetchone()[0]  # pg_sphere
        # The archive role owns what it owns in the live database: it can write and change schema.
        with copy.transaction():
            copy.execute("INSERT INTO env_check_imstat (run_id, image, npix, measured_at) "
                         "VALUES ('backup-test', 'x', 1, now())")
            copy.execute("CREATE TABLE backup_probe (x int)")
            raise psycopg.Rollback()


def test_restored_airflow_metadata_matches_the_manifest(backup, restored):
    want = backup[1]["databases"]["airflow"]["row_counts"]
    with connect(f"airflow_{SUFFIX}", user="airflow") as copy:
        got = counts(copy, ["dag_run", "task_instance"])
        assert got == {t: want[t] for t in got}
        assert copy.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
    assert "all match the manifest" in restored


@pytest.mark.parametrize("name", ["archive.dump", "airflow.dump"])
def test_corrupt_dump_is_refused_and_nothing_restored(stack, backup, tmp_path, name):
    copy = tmp_path / "corrupt"
    shutil.copytree(backup[0], copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(data)
    before = databases(stack)
    result = backup_sh(stack, "restore", str(copy), "--into-new", "e2ecorrupt")
    assert result.returncode == 1
    assert str(copy / name) in result.stderr and "corrupt" in result.stderr, result.stderr
    assert databases(stack) == before


def test_dump_refuses_when_the_stack_is_not_running(stack, tmp_path):
    env = {**stack.env, "DOWNLINK_PROJECT": TEST_ENV["DOWNLINK_PROJECT"] + "-absent"}
    result = backup_sh(stack, "dump", str(tmp_path / "b"), env=env)
    assert result.returncode == 1
    assert "is not running" in result.stderr, result.stderr
    assert not (tmp_path / "b").exists()


def test_failed_dump_leaves_no_backup(stack, tmp_path):
    """pg_dump of the second database fails (a docker shim): no directory that looks complete."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "docker").write_text(
        "#!/bin/sh\n"
        'case " $* " in *" pg_dump "*" airflow "*) echo partial; echo "pg_dump: simulated failure" >&2; exit 1;; esac\n'
        f'exec {shutil.which("docker")} "$@"\n')
    (shim / "docker").chmod(0o755)
    env = {**stack.env, "PATH": f"{shim}:{stack.env['PATH']}"}
    result = backup_sh(stack, "dump", str(tmp_path / "b"), env=env)
    assert result.returncode == 1
    assert "pg_dump of database airflow failed" in result.stderr and "nothing was written" in result.stderr
    assert os.listdir(tmp_path / "b") == []


def test_full_restore_swaps_and_airflow_comes_back(stack, backup):
    """Last: the default restore replaces the live databases (the same content here)."""
    directory, manifest, _ = backup
    result = backup_sh(stack, "restore", directory, timeout=1200)
    try:
        assert result.returncode == 0, result.stderr + result.stdout
        kept = sorted(d for d in databases(stack) if "_before_restore_" in d)
        assert len(kept) == 2 and all(f"dropdb -U postgres {d}" in result.stdout for d in kept), result.stdout
        assert not {"archive_restore", "airflow_restore"} & databases(stack)
        services = stack.services()
        for name in ("api-server", "scheduler", "dag-processor", "triggerer", "postgres"):
            assert services[name]["Health"] == "healthy", (name, services[name])
        with stack.archive_db() as conn:
            assert counts(conn, public_tables(conn)) == manifest["databases"]["archive"]["row_counts"]
            assert conn.execute("SELECT count(*) FROM observations WHERE q3c_radial_query(ra, dec, %s, %s, 0.25)",
                                M31).fetchone()[0] >= 4
            with conn.transaction():
                conn.execute("CREATE TABLE backup_probe (x int)")
                raise psycopg.Rollback()
        # Airflow answers from the restored metadata: every run of the backup is there.
        runs = stack.api.get("/api/v2/dags/~/dagRuns?limit=1")["total_entries"]
        assert runs >= manifest["databases"]["airflow"]["row_counts"]["dag_run"] > 0
    finally:
        drop_databases(stack, *(d for d in databases(stack) if "_before_restore_" in d))
