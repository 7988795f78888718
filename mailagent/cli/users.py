"""`users`: accounts of the review page. Passwords come from a prompt or from standard input,
never from the command line (where other users and shell history would see them)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mailagent.cli.common import (
    EX_DATAERR,
    Fail,
    Subparsers,
    command,
    fail_on,
    group,
    json_flag,
    print_json,
    store,
)
from mailagent.cli.rows import print_table

if TYPE_CHECKING:
    from mailagent.config import Settings
    from mailagent.store.models import User

ROLES = ["rep", "lead", "ops"]


def _password(args: argparse.Namespace, login: str) -> str:
    from mailagent.web.passwords import WeakPassword, check_strength

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        if not sys.stdin.isatty():
            raise Fail("no terminal to ask for the password: pipe it in with --password-stdin", EX_DATAERR)
        password = getpass.getpass(f"password for {login}: ")
        if getpass.getpass("again: ") != password:
            raise Fail("the passwords differ", EX_DATAERR)
    with fail_on(WeakPassword, code=EX_DATAERR):
        check_strength(password, login)
    return password


def cmd_add(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.store import accounts
    from mailagent.store.models import Role
    from mailagent.web.passwords import hash_password

    url = store(settings)
    with fail_on(accounts.AccountError):
        login = accounts.check_name(args.name)
        hashed = None if args.no_password else hash_password(_password(args, login))
        user = accounts.add(url, login, Role(args.role), hashed)
    how = "signs in only through the trusted proxy" if hashed is None else "signs in with a password"
    print(f"added {user.name} ({user.role}); {how}")
    return 0


def row(user: User) -> dict[str, object]:
    return {"id": user.id, "name": user.name, "role": user.role, "disabled": user.disabled,
            "password": user.password_hash is not None,
            "created_at": user.created_at.isoformat(timespec="seconds"),
            "last_login_at": user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else None}


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.store import accounts

    rows = [row(u) for u in accounts.users(store(settings))]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["name", "role", "disabled", "password", "last_login_at"])
    return 0


def cmd_set_disabled(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.store import accounts

    with fail_on(accounts.AccountError):
        user = accounts.set_disabled(store(settings), args.name, args.sub == "disable")
    print(f"{user.name} is {'disabled: every session of it has ended' if user.disabled else 'enabled'}")
    return 0


def cmd_password(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.store import accounts
    from mailagent.web.passwords import hash_password

    url = store(settings)
    with fail_on(accounts.AccountError):
        user = accounts.set_password(url, args.name, hash_password(_password(args, accounts.normalize(args.name))))
    print(f"new password for {user.name}; its sessions have ended")
    return 0


def _stdin_flag(c: argparse.ArgumentParser) -> None:
    c.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input (else: prompt twice)")


def register(sub: Subparsers) -> None:
    users = group(sub, "users", "accounts of the review page")
    c = command(users, "add", cmd_add, help="add an account (rep < lead < ops)")
    c.add_argument("name", help="the login (lower case; the name in the audit log)")
    c.add_argument("--role", choices=ROLES, required=True, help="rep: the queue; lead: plus quality and eval flags; "
                   "ops: plus policy and accounts")
    how = c.add_mutually_exclusive_group()
    _stdin_flag(how)
    how.add_argument("--no-password", action="store_true",
                     help="no password: the account signs in only through a trusted SSO proxy ([web] proxy_auth)")
    c = command(users, "list", cmd_list, help="every account")
    json_flag(c)
    c = command(users, "disable", cmd_set_disabled, help="refuse sign-ins and end the account's sessions at once")
    c.add_argument("name", help="the account's login (`users list`)")
    c = command(users, "enable", cmd_set_disabled, help="allow a disabled account again")
    c.add_argument("name", help="the account's login (`users list`)")
    c = command(users, "password", cmd_password, help="set a new password (ends the account's sessions)")
    c.add_argument("name", help="the account's login (`users list`)")
    _stdin_flag(c)
