"""Accounts: password hashes, the users file, the role table, the CLI and the auth manager's login
(runs in the Airflow image; no stack)."""
import os
import re
import stat

import pytest

from downlink_airflow import account_passwords as pw  # noqa: E402
from downlink_airflow import account_roles as roles  # noqa: E402
from downlink_airflow import account_store as store  # noqa: E402
from downlink_airflow import accounts_cli  # noqa: E402

# Cheap parameters for the tests that do not measure the real cost.
FAST = {"n": 2 ** 10, "r": 8, "p": 1}


# ---------------------------------------------------------------------------------------------
# Hashing


def test_hash_verifies_the_right_password_only():
    h = pw.hash_password("correct horse battery staple")
    assert pw.verify_password("correct horse battery staple", h)
    assert not pw.verify_password("correct horse battery stapler", h)
    assert not pw.verify_password("", h)


def test_hash_uses_the_default_cost_and_a_fresh_salt_each_time():
    a, b = pw.hash_password("same"), pw.hash_password("same")
    assert a != b  # per-user salt: equal passwords do not give equal hashes
    n, r, p, salt, key = pw.parse_hash(a)
    assert (n, r, p) == (pw.N, pw.R, pw.P) and len(salt) == pw.SALT_BYTES and len(key) == pw.KEY_BYTES
    assert "same" not in a


def test_hash_carries_its_parameters_so_older_costs_still_verify():
    h = pw.hash_password("pw", **FAST)
    assert h.startswith("scrypt$1024$8$1$")
    assert pw.verify_password("pw", h)


@pytest.mark.parametrize("bad", ["", "plaintext-password", "scrypt$1024$8$1$c2FsdA", "md5$abc$def",
                                 "scrypt$1000$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",  # N not 2^k
                                 "scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5"])
def test_malformed_hashes_never_verify(bad):
    assert not pw.is_hash(bad)
    assert not pw.verify_password("plaintext-password", bad)


def test_empty_password_cannot_be_hashed():
    with pytest.raises(ValueError):
        pw.hash_password("")


def test_generated_passwords_are_long_and_different():
    a, b = pw.generate_password(), pw.generate_password()
    assert a != b and len(a) >= 24 and re.fullmatch(r"[A-Za-z0-9_-]+", a)


# ---------------------------------------------------------------------------------------------
# The users file


def line(name, role, password="pw"):
    return f"{name}:{role}:{pw.hash_password(password, **FAST)}\n"


def test_parse_reads_accounts_and_skips_comments_and_blank_lines():
    text = "# comment\n\n" + line("alice", "viewer") + "  " + line("bob.o-p@x", "operator")
    accounts = store.parse(text, "/a/users")
    assert {a.name: a.role for a in accounts.values()} == {"alice": "viewer", "bob.o-p@x": "operator"}


@pytest.mark.parametrize("bad_line,reason", [
    ("alice:viewer\n", "expected name:role:password-hash, found 2 field(s)"),
    ("alice:boss:{hash}\n", "unknown role 'boss' (one of: viewer, operator, admin)"),
    ("-alice:viewer:{hash}\n", "bad user name '-alice'"),
    ("alice:viewer:hunter2\n", "user 'alice': the third field is not a password hash"),
])
def test_a_bad_line_is_refused_naming_the_file_and_the_line(bad_line, reason):
    text = "# header\n" + line("root", "admin") + bad_line.format(hash=pw.hash_password("x", **FAST))
    with pytest.raises(store.UsersFileError) as exc:
        store.parse(text, "/opt/airflow/accounts/users")
    assert str(exc.value).startswith("/opt/airflow/accounts/users, line 3: ")
    assert reason in str(exc.value)


def test_a_plaintext_password_in_the_file_is_not_echoed_in_the_error():
    with pytest.raises(store.UsersFileError) as exc:
        store.parse("alice:viewer:hunter2\n", "users")
    assert "hunter2" not in str(exc.value) and "make user-reset NAME=alice" in str(exc.value)


def test_a_user_listed_twice_is_refused():
    with pytest.raises(store.UsersFileError, match=r"users, line 2: user 'alice' is listed twice"):
        store.parse(line("alice", "viewer") + line("alice", "admin"), "users")


def test_a_missing_file_names_the_file(tmp_path):
    with pytest.raises(store.UsersFileError, match=re.escape(f"{tmp_path}/users: no such users file")):
        store.load(str(tmp_path / "users"))


def test_editing_creates_the_file_private_and_round_trips(tmp_path):
    path = str(tmp_path / "accounts" / "users")
    with store.editing(path) as accounts:
        accounts["alice"] = store.Account("alice", "viewer", pw.hash_password("pw", **FAST))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store.load(path) == accounts
    with store.editing(path) as again:
        del again["alice"]
    assert store.load(path) == {}
    assert [n for n in os.listdir(tmp_path / "accounts") if n.startswith(".users-")] == []  # no temporary left


def test_editing_leaves_a_bad_file_alone(tmp_path):
    path = tmp_path / "users"
    path.write_text("alice:viewer:hunter2\n")
    with pytest.raises(store.UsersFileError):
        with store.editing(str(path)):
            pass
    assert path.read_text() == "alice:viewer:hunter2\n"


# ---------------------------------------------------------------------------------------------
# Roles -> rights


@pytest.mark.parametrize("role,resource,method,ok", [
    # viewer: reads, changes nothing
    ("viewer", "dag", "GET", True), ("viewer", "dag", "POST", False), ("viewer", "dag", "PUT", False),
    ("viewer", "dag", "PATCH", False), ("viewer", "pool", "GET", True), ("viewer", "variable", "GET", False),
    ("viewer", "connection", "GET", False), ("viewer", "configuration", "GET", False), ("viewer", "view", "GET", True),
    ("viewer", "asset", "POST", False),
    # operator: runs (trigger, clear, mark, pause) and asset events; reads variables; no admin things
    ("operator", "dag", "POST", True), ("operator", "dag", "PUT", True), ("operator", "dag", "PATCH", True),
    ("operator", "dag", "DELETE", False), ("operator", "asset", "POST", True), ("operator", "variable", "GET", True),
    ("operator", "variable", "POST", False), ("operator", "variable", "PUT", False),
    ("operator", "connection", "GET", False), ("operator", "connection", "POST", False),
    ("operator", "configuration", "GET", False), ("operator", "pool", "PATCH", False),
    # admin: everything
    ("admin", "dag", "DELETE", True), ("admin", "connection", "POST", True), ("admin", "variable", "DELETE", True),
    ("admin", "configuration", "GET", True), ("admin", "team", "GET", True), ("admin", "nonesuch", "POST", True),
    # no role or an unknown one: nothing
    (None, "dag", "GET", False), ("boss", "dag", "GET", False), ("viewer", "nonesuch", "GET", False),
])
def test_role_table(role, resource, method, ok):
    assert roles.allowed(role, resource, method) is ok


def test_each_role_may_do_what_the_roles_below_it_may():
    for resource in list(roles.RESOURCES) + ["nonesuch"]:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            rights = [roles.allowed(r, resource, method) for r in roles.ROLES]
            assert rights == sorted(rights), (resource, method, rights)


def test_menu_shows_each_role_only_what_it_may_read():
    shown = {r: {item for item in roles.MENU if roles.menu_allowed(r, item)} for r in roles.ROLES}
    assert "Connections" not in shown["viewer"] | shown["operator"] and "Connections" in shown["admin"]
    assert "Variables" not in shown["viewer"] and "Variables" in shown["operator"]
    assert {"Dags", "Assets", "Pools"} <= shown["viewer"]
    assert roles.menu_allowed("admin", "Something New") and not roles.menu_allowed("operator", "Something New")


def test_the_table_covers_every_menu_item_of_this_airflow():
    from airflow.api_fastapi.common.types import MenuItem

    assert {item.value for item in MenuItem} <= set(roles.MENU)


# ---------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def users(tmp_path, monkeypatch):
    path = tmp_path / "users"
    monkeypatch.setenv("DOWNLINK_USERS_FILE", str(path))
    monkeypatch.setenv("DOWNLINK_ADMIN_USER", "admin")
    monkeypatch.setenv("DOWNLINK_ADMIN_PASSWORD", "a-long-generated-admin-password")
    return path


def cli(capsys, *argv):
    code = accounts_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def shown_password(out):
    return re.search(r"shown only now.*: (\S+)$", out, re.M).group(1)


def test_cli_add_prints_the_password_once_and_stores_only_its_hash(users, capsys):
    code, out, _ = cli(capsys, "add", "alice", "--role", "viewer")
    assert code == 0 and "added alice (viewer)" in out
    password = shown_password(out)
    text = users.read_text()
    assert password not in text
    account = store.load(str(users))["alice"]
    assert account.role == "viewer" and pw.verify_password(password, account.password_hash)


def test_cli_refuses_duplicates_unknown_roles_and_bad_names(users, capsys):
    cli(capsys, "add", "alice", "--role", "viewer")
    code, _, err = cli(capsys, "add", "alice", "--role", "admin")
    assert code == 1 and "user alice already exists (role viewer)" in err
    with pytest.raises(SystemExit) as exc:
        cli(capsys, "add", "bob", "--role", "boss")
    assert exc.value.code == 2 and "invalid choice: 'boss'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(capsys, "add", "bob:admin", "--role", "viewer")
    assert "bad user name 'bob:admin'" in capsys.readouterr().err


def test_cli_set_role_reset_and_remove(users, capsys):
    first = shown_password(cli(capsys, "add", "alice", "--role", "viewer")[1])
    assert cli(capsys, "set-role", "alice", "operator")[0] == 0
    assert store.load(str(users))["alice"].role == "operator"
    code, out, _ = cli(capsys, "reset-password", "alice")
    second = shown_password(out)
    account = store.load(str(users))["alice"]
    assert code == 0 and second != first
    assert pw.verify_password(second, account.password_hash) and not pw.verify_password(first, account.password_hash)
    code, out, _ = cli(capsys, "list")
    assert code == 0 and re.search(r"^alice\s+operator$", out, re.M)
    assert cli(capsys, "remove", "alice")[0] == 0
    assert "alice" not in store.load(str(users))
    code, _, err = cli(capsys, "remove", "alice")
    assert code == 1 and "no user alice" in err


def test_cli_ensure_admin_creates_keeps_and_follows_the_env_password(users, capsys, monkeypatch):
    code, out, _ = cli(capsys, "ensure-admin")
    assert code == 0 and "created" in out
    first = store.load(str(users))["admin"]
    assert first.role == "admin" and pw.verify_password("a-long-generated-admin-password", first.password_hash)
    assert "in place" in cli(capsys, "ensure-admin")[1]
    assert store.load(str(users))["admin"] == first  # untouched when nothing changed
    monkeypatch.setenv("DOWNLINK_ADMIN_PASSWORD", "another-long-admin-password")
    assert "updated" in cli(capsys, "ensure-admin")[1]
    assert pw.verify_password("another-long-admin-password", store.load(str(users))["admin"].password_hash)


def test_cli_ensure_admin_refuses_a_missing_or_short_password(users, capsys, monkeypatch):
    monkeypatch.setenv("DOWNLINK_ADMIN_PASSWORD", "short")
    code, _, err = cli(capsys, "ensure-admin")
    assert code == 1 and "DOWNLINK_ADMIN_PASSWORD" in err and not users.exists()


@pytest.mark.parametrize("argv", [["remove", "admin"], ["set-role", "admin", "viewer"], ["reset-password", "admin"]])
def test_cli_leaves_the_stacks_own_admin_to_the_env(users, capsys, argv):
    cli(capsys, "ensure-admin")
    code, _, err = cli(capsys, *argv)
    assert code == 1 and "DOWNLINK_ADMIN_PASSWORD in .env" in err
    assert store.load(str(users))["admin"].role == "admin"


def test_cli_names_a_bad_users_file(users, capsys):
    users.write_text(line("alice", "viewer") + "bob:viewer\n")
    code, _, err = cli(capsys, "list")
    assert code == 1 and f"{users}, line 2: expected name:role:password-hash" in err


# ---------------------------------------------------------------------------------------------
# The auth manager (login, tokens, rights), without an api-server


@pytest.fixture
def manager(users, capsys, monkeypatch):
    from downlink_airflow.auth_manager import DownlinkAuthManager

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "k" * 64)  # as make-env.sh makes it (HS512)

    passwords = {}
    for name, role in (("vera", "viewer"), ("otto", "operator")):
        passwords[name] = shown_password(cli(capsys, "add", name, "--role", role)[1])
    m = DownlinkAuthManager()
    return m, passwords


def body(username, password):
    from airflow.api_fastapi.auth.managers.simple.datamodels.login import LoginBody

    return LoginBody(username=username, password=password)


def test_manager_signs_in_with_the_right_password_only(manager):
    from fastapi import HTTPException

    m, passwords = manager
    token = m.create_token(body("vera", passwords["vera"]), 60)
    assert token.count(".") == 2
    for who, password in (("vera", "wrong"), ("nobody", passwords["vera"]), ("otto", passwords["vera"])):
        with pytest.raises(HTTPException) as exc:
            m.create_token(body(who, password), 60)
        assert exc.value.status_code == 401
    with pytest.raises(HTTPException) as exc:
        m.create_token(body("vera", ""), 60)
    assert exc.value.status_code == 400


def test_manager_rights_follow_the_role_in_the_file_not_the_token(manager, capsys):
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    m, _ = manager
    vera = m.deserialize_user(m.serialize_user(m.accounts.authenticate("vera", manager[1]["vera"])))
    assert m.is_authorized_dag(method="GET", user=vera)
    assert not m.is_authorized_dag(method="POST", user=vera, access_entity=DagAccessEntity.RUN)
    claims = m.serialize_user(vera)
    cli(capsys, "set-role", "vera", "operator")
    promoted = m.deserialize_user(claims)
    assert promoted.role == "operator" and m.is_authorized_dag(method="POST", user=promoted,
                                                               access_entity=DagAccessEntity.RUN)
    cli(capsys, "remove", "vera")
    with pytest.raises(ValueError):  # Airflow turns this into "invalid token": 401
        m.deserialize_user(claims)


def test_manager_menu_and_admin_things(manager):
    from airflow.api_fastapi.common.types import MenuItem

    m, passwords = manager
    otto = m.accounts.authenticate("otto", passwords["otto"])
    menu = m.filter_authorized_menu_items(list(MenuItem), user=otto)
    assert MenuItem.DAGS in menu and MenuItem.VARIABLES in menu and MenuItem.CONNECTIONS not in menu
    assert not m.is_authorized_connection(method="GET", user=otto)
    assert not m.is_authorized_variable(method="POST", user=otto)
    assert m.is_authorized_variable(method="GET", user=otto)


def test_manager_refuses_to_start_on_a_bad_users_file(users):
    from downlink_airflow.auth_manager import DownlinkAuthManager

    users.write_text("alice:root:x\n")
    with pytest.raises(store.UsersFileError, match=rf"{users}, line 1: unknown role 'root'"):
        DownlinkAuthManager().init()


def test_login_endpoint_through_fastapi(manager):
    from fastapi.testclient import TestClient

    m, passwords = manager
    client = TestClient(m.get_fastapi_app())
    ok = client.post("/token", json={"username": "otto", "password": passwords["otto"]})
    assert ok.status_code == 201 and ok.json()["access_token"]
    form = client.post("/token", data={"username": "otto", "password": passwords["otto"]})
    assert form.status_code == 201
    assert client.post("/token", json={"username": "otto", "password": "nope"}).status_code == 401
    assert client.post("/token/cli", json={"username": "otto", "password": passwords["otto"]}).status_code == 201
    assert client.get("/token").status_code != 201  # no password-less "all admins" token
    page = client.get("/login")
    assert page.status_code == 200 and "<html" in page.text.lower()


# ---------------------------------------------------------------------------------------------
# Issue 13: names checked whole, a writer that refuses what the reader refuses, bad text, tokens
# bound to the password, throttling


@pytest.mark.parametrize("name", ["alice\n", "alice\r\n", "\nalice", "alice\x00", "al ice", "", None, "a" * 65])
def test_a_name_is_checked_whole(name):
    with pytest.raises(ValueError, match="bad user name"):
        store.check_name(name)


def test_a_hash_is_checked_whole():
    h = pw.hash_password("pw", **FAST)
    assert pw.is_hash(h) and not pw.is_hash(h + "\n") and not pw.verify_password("pw", h + "\n")


def test_the_cli_refuses_a_name_ending_in_a_newline_and_the_file_stays_readable(users, capsys):
    cli(capsys, "add", "alice", "--role", "viewer")
    with pytest.raises(SystemExit) as exc:
        cli(capsys, "add", "bob\n", "--role", "viewer")
    assert exc.value.code == 2 and "bad user name 'bob\\n'" in capsys.readouterr().err
    assert list(store.load(str(users))) == ["alice"]


@pytest.mark.parametrize("account", [
    store.Account("bob\n", "viewer", "{hash}"),           # would split into two bad lines
    store.Account("bob", "viewer\n", "{hash}"),
    store.Account("bob", "boss", "{hash}"),
    store.Account("bob", "viewer", "{hash}\nmallory:admin:{hash}"),  # a second account smuggled in
    store.Account("bob", "viewer", "hunter2"),
])
def test_the_writer_refuses_what_the_reader_would_refuse(tmp_path, account):
    h = pw.hash_password("pw", **FAST)
    path = tmp_path / "users"
    with store.editing(str(path)) as accounts:
        accounts["alice"] = store.Account("alice", "admin", h)
    before = path.read_text()
    bad = store.Account(account.name, account.role, account.password_hash.format(hash=h))
    with pytest.raises(ValueError, match="refusing to write the users file"):
        with store.editing(str(path)) as accounts:
            accounts[bad.name] = bad
    assert path.read_text() == before and list(store.load(str(path))) == ["alice"]


def test_a_lone_surrogate_is_a_clean_400_not_a_500(manager):
    from fastapi.testclient import TestClient

    m, passwords = manager
    client = TestClient(m.get_fastapi_app(), raise_server_exceptions=False)
    for body in ('{"username": "vera", "password": "\\ud800"}', '{"username": "ve\\udfffra", "password": "x"}'):
        answer = client.post("/token", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 400 and "valid Unicode" in answer.text, (body, answer.status_code, answer.text)
    assert not pw.verify_password("\ud800", pw.hash_password("x", **FAST))


def claims_of(m, token):
    import jwt

    return jwt.decode(token, options={"verify_signature": False})


def test_a_token_is_bound_to_the_password_it_was_issued_for(manager, capsys):
    m, passwords = manager
    token = m.create_token(body("vera", passwords["vera"]), 60)
    claims = claims_of(m, token)
    assert claims["sub"] == "vera" and claims["cred"] and m.accounts.get("vera").password_hash not in token
    assert m.deserialize_user(claims).username == "vera"
    cli(capsys, "set-role", "vera", "operator")  # a role change keeps the session
    assert m.deserialize_user(claims).role == "operator"
    new = shown_password(cli(capsys, "reset-password", "vera")[1])
    with pytest.raises(ValueError, match="password of 'vera' changed"):  # Airflow: invalid token, 401
        m.deserialize_user(claims)
    fresh = claims_of(m, m.create_token(body("vera", new), 60))
    assert fresh["cred"] != claims["cred"] and m.deserialize_user(fresh).username == "vera"
    with pytest.raises(ValueError):
        m.deserialize_user({k: v for k, v in fresh.items() if k != "cred"})  # a token from before the tag


def test_a_token_for_a_signed_in_user_carries_the_tag_too(manager):
    # Airflow's own /ui/auth/token makes tokens from the user of the request.
    m, passwords = manager
    user = m.deserialize_user(claims_of(m, m.create_token(body("otto", passwords["otto"]), 60)))
    assert m.deserialize_user(claims_of(m, m.generate_jwt(user, expiration_time_in_seconds=60))) == user


def test_the_ui_token_lives_as_long_as_the_setting_says(manager, monkeypatch):
    from fastapi.testclient import TestClient

    m, passwords = manager
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME", "28800")
    client = TestClient(m.get_fastapi_app())
    claims = claims_of(m, client.post("/token", json={"username": "otto", "password": passwords["otto"]}).json()["access_token"])
    assert claims["exp"] - claims["iat"] == 28800



class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_backoff_is_free_for_a_few_failures_then_doubles_up_to_its_cap_and_is_forgotten():
    from downlink_airflow.login_throttle import Backoff

    clock = FakeClock()
    b = Backoff(3, base=1, cap=60, forget=900, clock=clock)
    for _ in range(3):
        assert b.retry_after("u") == 0
        b.failed("u")
    assert [b.delay(n) for n in range(3, 12)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert b.retry_after("u") == 1 and b.retry_after("other") == 0
    for _ in range(10):
        b.failed("u")
    assert b.retry_after("u") == 60  # capped
    clock.now += 30
    assert b.retry_after("u") == 30
    clock.now += 901
    assert b.retry_after("u") == 0  # forgotten after a quiet while
    b.failed("u")
    assert b.retry_after("u") == 0  # counts start again
    b.succeeded("u")
    assert b.retry_after(None) == 0


def test_backoff_keeps_a_bounded_number_of_keys():
    from downlink_airflow.login_throttle import Backoff

    b = Backoff(0, max_entries=100, clock=FakeClock())
    for n in range(1000):
        b.failed(f"random-{n}")
    assert len(b._entries) == 100 and b.retry_after("random-999") > 0 and b.retry_after("random-0") == 0


def test_the_gate_lets_only_a_few_checks_run_at_once_and_refuses_the_rest():
    import threading

    from downlink_airflow.login_throttle import LoginThrottle, Throttled

    throttle = LoginThrottle(concurrent=2, max_waiting=1, gate_wait=0.1)
    release, started, running, most = threading.Event(), threading.Semaphore(0), [0], [0]
    lock = threading.Lock()

    def slow_check():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        started.release()
        release.wait(30)
        with lock:
            running[0] -= 1
        return True

    threads = [threading.Thread(target=throttle.check, args=(f"u{n}", "10.0.0.1", slow_check)) for n in range(2)]
    for t in threads:
        t.start()
    for _ in threads:
        assert started.acquire(timeout=30)
    with pytest.raises(Throttled) as exc:  # both slots taken: a third login is refused, not queued forever
        throttle.check("u3", "10.0.0.2", lambda: True)
    assert exc.value.seconds == 1 and "at once" in str(exc.value)
    # With the one waiting place taken too, the next login is refused without waiting at all.
    throttle.gate_wait = 30
    waiter = threading.Thread(target=throttle.check, args=("u4", "10.0.0.3", lambda: True))
    waiter.start()
    while throttle._inside < 3:
        threading.Event().wait(0.01)
    acquires = []
    real_gate = throttle.gate

    class CountingGate:
        def acquire(self, timeout=None):
            acquires.append(timeout)
            return real_gate.acquire(timeout=timeout)

        def release(self):
            real_gate.release()

    throttle.gate = CountingGate()
    with pytest.raises(Throttled, match="at once"):
        throttle.check("u5", "10.0.0.4", slow_check)
    assert acquires == [] and most[0] == 2
    throttle.gate = real_gate
    release.set()
    for t in threads + [waiter]:
        t.join(30)
    assert most[0] == 2 and throttle.check("u3", "10.0.0.2", lambda: True) is True


@pytest.fixture
def throttled(manager):
    """The manager with the real throttle settings on a clock that stands still."""
    from downlink_airflow import login_throttle as lt

    m, passwords = manager
    clock = FakeClock()
    m.throttle = lt.LoginThrottle(per_user=lt.Backoff(lt.FREE_FAILURES, clock=clock),
                                  per_address=lt.Backoff(lt.FREE_FAILURES_PER_ADDRESS, clock=clock))
    return m, passwords, clock


def token_status(m, username, password, client="192.0.2.1"):
    from fastapi import HTTPException

    try:
        m.create_token(body(username, password), 60, client)
        return 201, None
    except HTTPException as exc:
        return exc.status_code, (exc.headers or {}).get("Retry-After")


def test_failed_logins_for_a_user_back_off_with_429_and_retry_after(throttled):
    from downlink_airflow import login_throttle as lt

    m, passwords, clock = throttled
    answers = [token_status(m, "vera", f"guess-{n}", client=f"198.51.100.{n}") for n in range(lt.FREE_FAILURES)]
    assert answers == [(401, None)] * lt.FREE_FAILURES
    # Now even the right password waits (from anywhere): a guesser cannot tell.
    assert token_status(m, "vera", passwords["vera"]) == (429, "1")
    assert token_status(m, "otto", passwords["otto"])[0] == 201  # other users are not affected
    clock.now += 1.5
    assert token_status(m, "vera", "guess-again")[0] == 401
    assert token_status(m, "vera", passwords["vera"]) == (429, "2")  # doubled
    clock.now += 2.5
    assert token_status(m, "vera", passwords["vera"])[0] == 201
    assert token_status(m, "vera", "one typo")[0] == 401  # a success cleared the count


def test_failed_logins_from_one_address_back_off_whatever_the_names(throttled):
    from downlink_airflow import login_throttle as lt

    m, passwords, clock = throttled
    for n in range(lt.FREE_FAILURES_PER_ADDRESS):
        assert token_status(m, f"nobody-{n}", "x", client="203.0.113.9")[0] == 401
    assert token_status(m, "otto", passwords["otto"], client="203.0.113.9") == (429, "1")
    assert token_status(m, "otto", passwords["otto"], client="203.0.113.10")[0] == 201


def test_the_login_endpoint_answers_429_with_retry_after(throttled):
    from fastapi.testclient import TestClient

    from downlink_airflow import login_throttle as lt

    m, passwords, clock = throttled
    client = TestClient(m.get_fastapi_app())
    for n in range(lt.FREE_FAILURES):
        assert client.post("/token", json={"username": "otto", "password": f"nope-{n}"}).status_code == 401
    answer = client.post("/token", json={"username": "otto", "password": passwords["otto"]})
    assert answer.status_code == 429 and answer.headers["retry-after"] == "1", (answer.status_code, answer.text)
    assert "too many failed logins" in answer.json()["detail"]
    cli_answer = client.post("/token/cli", json={"username": "otto", "password": passwords["otto"]})
    assert cli_answer.status_code == 429


def test_a_name_that_cannot_be_an_account_costs_no_password_check(throttled, monkeypatch):
    m, passwords, clock = throttled
    checks = []
    monkeypatch.setattr(pw, "_scrypt", lambda *a: checks.append(a) or b"")
    assert token_status(m, "x" * 10_000, "pw")[0] == 401 and token_status(m, "bad\nname", "pw")[0] == 401
    assert checks == []
