"""Connection to the science database `archive`, with versioned schema migrations.

Migrations are the files migrations/NNNN_name.sql, applied in order, each once, inside one
transaction under an advisory lock, so concurrent steps never race to create a table.
"""
import re
from importlib import resources

from downlink import StepError, settings

DSN_VARIABLE = "DOWNLINK_ARCHIVE_DSN"
MIGRATION_LOCK = 0x0D0_11A4  # any constant; shared by every step that migrates
MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrations():
    """[(version, name, sql)] for every migration file, in version order."""
    found = []
    for entry in resources.files("downlink.migrations").iterdir():
        m = MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text()))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise StepError(f"two migration files share a version number: {sorted(versions)}")
    return sorted(found)


def connect(dsn=None, migrate=True):
    """Open a psycopg connection to `archive` and bring its schema up to date."""
    import psycopg

    dsn = dsn or settings.get("archive_dsn")
    if not dsn:
        raise StepError(f"{DSN_VARIABLE} is not set (e.g. postgresql://archive:PASSWORD@postgres:5432/archive)")
    try:
        conn = psycopg.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StepError(f"cannot connect to the archive database: {str(exc).strip()}") from exc
    if migrate:
        apply_migrations(conn)
    return conn


def apply_migrations(conn):
    """Apply the migrations this database lacks; return the versions applied."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(version)
    return applied
