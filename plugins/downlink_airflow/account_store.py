"""The users file: Downlink's accounts, one per line, `name:role:password-hash`.

It lives on the `accounts` volume (DOWNLINK_USERS_FILE, default /opt/airflow/accounts/users),
readable by the Airflow user only, and holds scrypt hashes, never passwords. Lines starting with
`#` and blank lines are ignored. A bad file is refused as a whole with an error naming the file
and the line, so a typo can never silently lock someone out or let someone in.

Changes go through `editing()`: an exclusive lock (a sibling `.lock` file), then the new content
is written to a temporary file and renamed over the old one, so readers see either version whole.
"""
import contextlib
import fcntl
import os
import re
from dataclasses import dataclass

import downlink_data

from downlink_airflow.account_passwords import parse_hash
from downlink_airflow.account_roles import ROLES
from downlink_airflow.config import Settings

DEFAULT_PATH = Settings.users_file  # the setting's default (DOWNLINK_USERS_FILE)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # always fullmatch: `$` lets "alice\n" through
NAME_RULE = "1-64 characters: letters, digits and . _ @ - (not first)"
HEADER = ("# Downlink accounts: name:role:password-hash (scrypt). Roles: " + ", ".join(ROLES) + ".\n"
          "# Managed with `make user-add` / `user-role` / `user-reset` / `user-remove` (docs/operations.md \"Accounts\").\n")


class UsersFileError(Exception):
    """The users file is missing or malformed; the message names the file (and line)."""


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str


def default_path():
    return Settings.from_env().users_file


def check_name(name):
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"bad user name {name!r}: {NAME_RULE}")


def check_role(role):
    if not isinstance(role, str) or role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of: {', '.join(ROLES)})")


def parse(text, path):
    """{name: Account} from the file's text; UsersFileError naming path and line on any problem."""
    accounts = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        fields = line.split(":")
        if len(fields) != 3:
            raise UsersFileError(f"{where}: expected name:role:password-hash, found {len(fields)} field(s)")
        name, role, password_hash = fields
        try:
            check_name(name)
            check_role(role)
        except ValueError as exc:
            raise UsersFileError(f"{where}: {exc}") from None
        try:
            parse_hash(password_hash)
        except ValueError as exc:
            # Never echo the field: it might be a password someone typed in by hand.
            raise UsersFileError(f"{where}: user {name!r}: the third field is {exc}; passwords are "
                                 f"never stored in clear (set one with: make user-reset NAME={name})") from None
        if name in accounts:
            raise UsersFileError(f"{where}: user {name!r} is listed twice")
        accounts[name] = Account(name, role, password_hash)
    return accounts


def load(path=None):
    path = path or default_path()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise UsersFileError(f"{path}: no such users file (airflow-init creates it with the admin "
                             f"account on 'make up')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsersFileError(f"{path}: cannot read the users file: {exc}") from None
    return parse(text, path)


def render(accounts):
    """The file's text; ValueError for anything the reader (parse) would refuse, so a bad entry can
    never reach the file and lock everyone out."""
    text = HEADER + "".join(f"{a.name}:{a.role}:{a.password_hash}\n" for a in accounts.values())
    for key, a in accounts.items():
        if key != a.name:
            raise ValueError(f"account {a.name!r} filed under {key!r}")
    try:
        again = parse(text, "the new users file")
    except UsersFileError as exc:
        raise ValueError(f"refusing to write the users file: {exc}") from None
    if again != dict(accounts):
        raise ValueError("refusing to write the users file: it would not read back as written")
    return text


def save(path, accounts):
    """Write atomically (temporary file in the same folder, then rename), mode 0600."""
    downlink_data.atomic_write(path, render(accounts), mode=0o600, fsync=True)


@contextlib.contextmanager
def editing(path=None):
    """Lock the file, yield its accounts as a dict to change in place, and save them if changed.
    A missing file starts empty (first run)."""
    path = path or default_path()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    old_umask = os.umask(0o077)
    try:
        with open(path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            accounts = load(path) if os.path.exists(path) else {}
            before = dict(accounts)
            yield accounts
            if accounts != before or not os.path.exists(path):
                save(path, accounts)
    finally:
        os.umask(old_umask)
