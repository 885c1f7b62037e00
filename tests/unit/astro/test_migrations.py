from downlink import db


def test_migrations_are_numbered_and_ordered():
    found = db.migrations()
    versions = [v for v, _, _ in found]
    assert versions == sorted(versions) and versions[0] == 1
    assert len(set(versions)) == len(versions)
    assert all(sql.strip() for _, _, sql in found)


def test_connect_without_dsn_names_the_variable(monkeypatch):
    import pytest

    monkeypatch.delenv(db.DSN_VARIABLE, raising=False)
    with pytest.raises(db.StepError, match=db.DSN_VARIABLE):
        db.connect()
