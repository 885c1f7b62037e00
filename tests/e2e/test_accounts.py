"""Team accounts on the real stack: users made with the CLI (`make user-add ...`, run in the
api-server), roles enforced by the REST API, passwords kept only as hashes on the accounts volume.

A viewer reads but is refused a trigger (403); an operator triggers; a wrong password gets 401; a
role change, a password reset and a removal take effect at once, even for tokens already issued;
a sign-in lasts 8 hours; repeated failures are throttled (429 with Retry-After), per user and per
client address.
"""
import base64
import json
import re
import subprocess
import urllib.error
import uuid

import pytest

from conftest import ROOT, dagrun

DAG = "astro_env_check"  # manual, quick, harmless to run
USERS_FILE = "/opt/airflow/accounts/users"
HASHED_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*:(viewer|operator|admin):"
                         r"scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$")


def make(stack, *args):
    """A make target run the way a person would, against the e2e stack's compose project."""
    return subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=ROOT, env=stack.env,
                          capture_output=True, text=True, timeout=300)


def add_user(stack, name, role):
    out = make(stack, "user-add", f"NAME={name}", f"ROLE={role}")
    assert out.returncode == 0, out.stderr
    assert f"added {name} ({role})" in out.stdout
    return shown_password(out.stdout)


def shown_password(stdout):
    return re.search(r"shown only now.*: (\S+)$", stdout, re.M).group(1)


def login(stack, name, password):
    api = dagrun.AirflowAPI(base_url=stack.web_url, user=name, password=password)
    api.token()
    return api


def http_status(call, *args):
    """The HTTP status of an API call (2xx calls return 200)."""
    try:
        call(*args)
        return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def trigger(api, run_id):
    return api.post(f"/api/v2/dags/{DAG}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": {}})


@pytest.fixture(scope="module")
def team(stack):
    stack.api.wait_for_dag(DAG)
    suffix = uuid.uuid4().hex[:6]
    names = {"viewer": f"vera-{suffix}", "operator": f"otto-{suffix}"}
    passwords = {role: add_user(stack, name, role) for role, name in names.items()}
    yield {role: (names[role], passwords[role]) for role in names}
    for name in names.values():
        make(stack, "user-remove", f"NAME={name}")


def test_the_first_admin_exists_with_the_generated_password(stack):
    out = make(stack, "user-list")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^admin\s+admin$", out.stdout, re.M), out.stdout
    assert login(stack, "admin", dagrun.setting("DOWNLINK_ADMIN_PASSWORD")).get(f"/api/v2/dags/{DAG}")["dag_id"] == DAG


def test_a_viewer_reads_but_is_refused_a_trigger(stack, team):
    viewer = login(stack, *team["viewer"])
    assert viewer.get(f"/api/v2/dags/{DAG}")["dag_id"] == DAG
    runs = f"/api/v2/dags/{DAG}/dagRuns?limit=100"
    assert viewer.get(runs)["total_entries"] == stack.api.get(runs)["total_entries"]  # reads what the admin reads
    run_id = f"viewer_{uuid.uuid4().hex[:8]}"
    assert http_status(trigger, viewer, run_id) == 403
    assert http_status(viewer.get, f"/api/v2/dags/{DAG}/dagRuns/{run_id}") == 404  # nothing was created
    assert http_status(viewer.patch, f"/api/v2/dags/{DAG}", {"is_paused": True}) == 403
    assert http_status(viewer.get, "/api/v2/connections") == 403
    assert http_status(viewer.get, "/api/v2/variables") == 403


def test_an_operator_triggers_but_may_not_touch_connections_or_variables(stack, team):
    operator = login(stack, *team["operator"])
    run_id = f"operator_{uuid.uuid4().hex[:8]}"
    run = trigger(operator, run_id)
    assert run["dag_run_id"] == run_id and run["run_type"] == "manual"
    viewer = login(stack, *team["viewer"])  # and everyone can see it
    assert viewer.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}")["dag_run_id"] == run_id
    assert http_status(operator.get, "/api/v2/variables") == 200
    assert http_status(operator.post, "/api/v2/variables", {"key": "e2e_probe", "value": "x"}) == 403
    assert http_status(operator.get, "/api/v2/connections") == 403
    assert http_status(operator.post, "/api/v2/connections", {"connection_id": "e2e_probe", "conn_type": "http"}) == 403
    assert stack.api.wait_for_run(DAG, run_id, timeout=600) == "success"


def test_a_wrong_password_or_an_unknown_user_is_refused(stack, team):
    name, password = team["viewer"]
    for who, pw in ((name, password + "x"), (name, team["operator"][1]), ("nobody-" + name, password)):
        with pytest.raises(urllib.error.HTTPError) as exc:
            login(stack, who, pw)
        assert exc.value.code == 401, (who, exc.value.code)


def test_role_change_reset_and_removal_take_effect_at_once(stack):
    name = f"tess-{uuid.uuid4().hex[:6]}"
    first = add_user(stack, name, "viewer")
    api = login(stack, name, first)
    unpause = (f"/api/v2/dags/{DAG}", {"is_paused": False})
    assert http_status(api.patch, *unpause) == 403

    out = make(stack, "user-role", f"NAME={name}", "ROLE=operator")
    assert out.returncode == 0 and "viewer -> operator" in out.stdout, out.stderr
    assert http_status(api.patch, *unpause) == 200  # the same token, now an operator's

    out = make(stack, "user-reset", f"NAME={name}")
    assert out.returncode == 0, out.stderr
    second = shown_password(out.stdout)
    assert second != first
    with pytest.raises(urllib.error.HTTPError) as exc:
        login(stack, name, first)
    assert exc.value.code == 401
    fresh = login(stack, name, second)
    # The reset ended the session signed in with the old password at once; the new one works.
    with pytest.raises(urllib.error.HTTPError) as exc:
        api.get(f"/api/v2/dags/{DAG}")
    assert exc.value.code == 403 and "Invalid JWT token" in exc.value.read().decode()
    assert fresh.get(f"/api/v2/dags/{DAG}")["dag_id"] == DAG

    out = make(stack, "user-remove", f"NAME={name}")
    assert out.returncode == 0, out.stderr
    for token_holder in (api, fresh):  # Airflow answers a token it no longer accepts with 403
        with pytest.raises(urllib.error.HTTPError) as exc:
            token_holder.get(f"/api/v2/dags/{DAG}")
        assert exc.value.code == 403 and "Invalid JWT token" in exc.value.read().decode()
    assert name not in make(stack, "user-list").stdout


def test_the_cli_refuses_clearly(stack, team):
    out = make(stack, "user-add", f"NAME={team['viewer'][0]}", "ROLE=admin")
    assert out.returncode != 0 and f"user {team['viewer'][0]} already exists (role viewer)" in out.stderr
    out = make(stack, "user-add", "NAME=someone", "ROLE=boss")
    assert out.returncode != 0 and "invalid choice: 'boss'" in out.stderr
    out = make(stack, "user-remove", "NAME=admin")
    assert out.returncode != 0 and "DOWNLINK_ADMIN_PASSWORD in .env" in out.stderr
    out = make(stack, "user-add", "NAME=nobody")
    assert out.returncode == 2 and "usage: make user-add NAME=nobody ROLE=" in out.stderr


def test_the_users_file_on_the_volume_holds_hashes_only(stack, team):
    meta = stack.compose("exec", "-T", "api-server", "stat", "-c", "%a %u", USERS_FILE).stdout.split()
    assert meta == ["600", "50000"], meta
    text = stack.compose("exec", "-T", "api-server", "cat", USERS_FILE).stdout
    entries = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(entries) >= 3
    for line in entries:
        assert HASHED_LINE.match(line), line
    for secret in (team["viewer"][1], team["operator"][1], dagrun.setting("DOWNLINK_ADMIN_PASSWORD")):
        assert secret not in text
    # And SimpleAuthManager's clear-text password file is gone from every Airflow container.
    for service in ("api-server", "scheduler"):
        found = stack.compose("exec", "-T", service, "sh", "-c",
                              "ls /opt/airflow/simple_auth_manager_passwords.json* 2>/dev/null || true").stdout
        assert found.strip() == "", (service, found)



def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_sign_in_lasts_8_hours_and_is_bound_to_the_password(stack, team):
    api = login(stack, *team["viewer"])
    c = claims(api.token())
    assert c["exp"] - c["iat"] == 8 * 3600, c  # DOWNLINK_SESSION_SECONDS' default
    assert c["sub"] == team["viewer"][0] and c["cred"] and "scrypt" not in json.dumps(c)


# Run in a container on the stack's network: the api-server sees its own address, so the
# per-address backoff it earns does not touch the tests' logins from the host.
GUESSER = r"""
import json, sys, time, urllib.error, urllib.request
URL = "http://api-server:8080/auth/token"

def post(name, password):
    req = urllib.request.Request(URL, json.dumps({"username": name, "password": password}).encode(),
                                 {"Content-Type": "application/json"})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, retry, text = resp.status, None, ""
    except urllib.error.HTTPError as exc:
        status, retry, text = exc.code, exc.headers.get("Retry-After"), exc.read().decode()
    return [status, retry, text[:120], round(time.monotonic() - start, 3)]

def report(phase, answers):
    print(json.dumps({"phase": phase, "answers": answers}), flush=True)

phase, name, password = sys.argv[1:4]
answers = []
if phase == "user":
    # Guess one user's password until the wait is a few seconds (waiting out shorter ones), then
    # try the right one.
    while len(answers) < 40:
        answers.append(post(name, "guess-%d" % len(answers)))
        if answers[-1][0] == 429:
            if int(answers[-1][1]) >= 4:
                break
            time.sleep(int(answers[-1][1]))
    answers.append(post(name, password))
else:
    # Many names from this one address until the address must wait, then a real account's login.
    while len(answers) < 40:
        answers.append(post("nobody-%d" % len(answers), "x"))
        if answers[-1][0] == 429:
            break
    answers.append(post(name, password))
report(phase, answers)
"""


def guess(stack, phase, name, password):
    out = subprocess.run(["docker", "run", "--rm", "--network", f"{stack.project}-net", f"downlink/astro:{stack.tag}",
                          "python3", "-c", GUESSER, phase, name, password],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    answers = json.loads(out.stdout.splitlines()[-1])["answers"]
    print(phase, [(a[0], a[1], a[3]) for a in answers])  # status, Retry-After, seconds (for the record)
    return answers


def test_failed_logins_are_throttled_per_user_and_per_address(stack, team):
    name = f"gus-{uuid.uuid4().hex[:6]}"
    right = add_user(stack, name, "viewer")

    *user, with_right_password = guess(stack, "user", name, right)
    first_429 = next(i for i, a in enumerate(user) if a[0] == 429)
    assert first_429 >= 5 and all(a[0] == 401 for a in user[:first_429]), user  # five typos are free
    assert [a[0] for a in user].count(401) <= 8, user
    assert "too many failed logins for this user" in user[first_429][2]
    assert user[-1][0] == 429 and int(user[-1][1]) >= 4, user  # doubling: 1, 2, 4 ... seconds
    # Meanwhile the right password waits too, from anywhere (a guesser cannot tell it was right) ...
    assert with_right_password[0] == 429, with_right_password
    with pytest.raises(urllib.error.HTTPError) as exc:
        login(stack, name, right)
    assert exc.value.code == 429 and int(exc.value.headers["Retry-After"]) >= 1
    # ... while other users sign in as usual.
    assert login(stack, *team["viewer"]).get(f"/api/v2/dags/{DAG}")["dag_id"] == DAG

    other, other_password = team["operator"]
    *address, other_from_there = guess(stack, "address", other, other_password)
    assert address[-1][0] == 429 and "this address" in address[-1][2], address
    assert all(a[0] == 401 for a in address[:-1]) and len(address) >= 10, address
    assert other_from_there[0] == 429, other_from_there  # that address now waits, whoever it names
    assert login(stack, other, other_password).get(f"/api/v2/dags/{DAG}")["dag_id"] == DAG  # not the host
    make(stack, "user-remove", f"NAME={name}")


def test_a_password_that_is_not_valid_unicode_is_a_clean_400(stack):
    import urllib.request

    req = urllib.request.Request(stack.web_url + "/auth/token", b'{"username": "admin", "password": "\\ud800"}',
                                 {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=60)
    assert exc.value.code == 400 and "valid Unicode" in exc.value.read().decode()
