"""`downlink migrate`: bring the archive database's schema up to date (every DB step also does)."""
from downlink import db


def add_parser(sub):
    return sub.add_parser("migrate", help="apply pending schema migrations to the archive database",
                          description=__doc__)


def run(args):
    conn = db.connect(migrate=False)
    with conn:
        applied = db.apply_migrations(conn)
    print(f"applied migrations: {applied}" if applied else "schema up to date")
    return 0
