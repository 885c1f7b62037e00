"""`python -m downlink_airflow.accounts_cli`: manage Downlink's web accounts (the users file).

Run inside the api-server container (`make user-add NAME=alice ROLE=viewer`, `make user-list`, ...),
as the Airflow user. New and reset passwords are generated and printed once; only their scrypt
hashes are kept.

Exit codes: 0 done; 1 refused (no such user, already exists, bad users file); 2 bad usage.
"""
import argparse
import sys

from downlink_airflow import account_passwords, account_store
from downlink_airflow.account_roles import ROLES
from downlink_airflow.config import Settings


class Refused(Exception):
    pass


def bootstrap_admin():
    return Settings.from_env().admin_user


def not_the_bootstrap_admin(name, what):
    if name == bootstrap_admin():
        raise Refused(f"{name} is the stack's own admin: its password is DOWNLINK_ADMIN_PASSWORD in .env "
                      f"(change it there and run 'make up'); it cannot be {what}")


def show_password(name, password):
    print(f"password for {name} (shown only now; give it to them, it is not stored in clear): {password}")


def cmd_add(args):
    password = account_passwords.generate_password()
    with account_store.editing(args.file) as accounts:
        if args.name in accounts:
            raise Refused(f"user {args.name} already exists (role {accounts[args.name].role}); "
                          f"make user-role / user-reset change it")
        accounts[args.name] = account_store.Account(args.name, args.role, account_passwords.hash_password(password))
    print(f"added {args.name} ({args.role})")
    show_password(args.name, password)


def existing(accounts, name):
    if name not in accounts:
        raise Refused(f"no user {name} (make user-list shows them)")
    return accounts[name]


def cmd_set_role(args):
    not_the_bootstrap_admin(args.name, "given another role")
    with account_store.editing(args.file) as accounts:
        old = existing(accounts, args.name)
        accounts[args.name] = account_store.Account(old.name, args.role, old.password_hash)
    print(f"{args.name}: role {old.role} -> {args.role} (from the next request on)")


def cmd_reset_password(args):
    not_the_bootstrap_admin(args.name, "reset here")
    password = account_passwords.generate_password()
    with account_store.editing(args.file) as accounts:
        old = existing(accounts, args.name)
        accounts[args.name] = account_store.Account(old.name, old.role, account_passwords.hash_password(password))
    print(f"{args.name}: new password set; the old one no longer works")
    show_password(args.name, password)


def cmd_remove(args):
    not_the_bootstrap_admin(args.name, "removed")
    with account_store.editing(args.file) as accounts:
        existing(accounts, args.name)
        del accounts[args.name]
    print(f"removed {args.name}; their sessions end with their next request")


def cmd_list(args):
    accounts = account_store.load(args.file)
    width = max([4] + [len(n) for n in accounts])
    print(f"{'user':<{width}}  role")
    for a in sorted(accounts.values(), key=lambda a: (-ROLES.index(a.role), a.name)):
        print(f"{a.name:<{width}}  {a.role}")


def cmd_ensure_admin(args):
    """First run and every start (airflow-init): the stack's own admin, with the password from
    DOWNLINK_ADMIN_PASSWORD (.env), so `make info` always prints a login that works."""
    name, password = bootstrap_admin(), Settings.from_env().admin_password
    account_store.check_name(name)
    if len(password) < 12:
        raise Refused("DOWNLINK_ADMIN_PASSWORD is unset or shorter than 12 characters (make env generates one)")
    with account_store.editing(args.file) as accounts:
        old = accounts.get(name)
        if old and old.role == "admin" and account_passwords.verify_password(password, old.password_hash):
            print(f"{name}: admin account in place")
            return
        accounts[name] = account_store.Account(name, "admin", account_passwords.hash_password(password))
    print(f"{name}: admin account {'updated from' if old else 'created with'} DOWNLINK_ADMIN_PASSWORD")


def name_arg(value):
    try:
        account_store.check_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m downlink_airflow.accounts_cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", default=None, help=f"users file (default: $DOWNLINK_USERS_FILE or {account_store.DEFAULT_PATH})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("add", help="add a user with a generated password (printed once)")
    p.add_argument("name", type=name_arg)
    p.add_argument("--role", required=True, choices=ROLES)
    p.set_defaults(run=cmd_add)
    p = sub.add_parser("set-role", help="change a user's role")
    p.add_argument("name", type=name_arg)
    p.add_argument("role", choices=ROLES)
    p.set_defaults(run=cmd_set_role)
    p = sub.add_parser("reset-password", help="give a user a new generated password (printed once)")
    p.add_argument("name", type=name_arg)
    p.set_defaults(run=cmd_reset_password)
    p = sub.add_parser("remove", help="remove a user")
    p.add_argument("name", type=name_arg)
    p.set_defaults(run=cmd_remove)
    sub.add_parser("list", help="list users and roles").set_defaults(run=cmd_list)
    sub.add_parser("ensure-admin", help="create or update the admin from DOWNLINK_ADMIN_PASSWORD").set_defaults(
        run=cmd_ensure_admin)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (Refused, account_store.UsersFileError, ValueError) as exc:
        print(f"accounts: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"accounts: {exc} (run as the airflow user, in the api-server container)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
