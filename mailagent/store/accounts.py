"""Accounts of the review page: users, their sessions and failed sign-ins. Hashing and cookie
signing happen above (web/); this module stores what they produce."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from mailagent.store import db
from mailagent.store.models import LoginFailure, Role, User, WebSession, now

_NAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,63}$")


class AccountError(ValueError):
    """An account change that cannot apply; the message says why."""


def normalize(name: str) -> str:
    """Logins compare case-insensitively; the stored name is the lower-case form."""
    return name.strip().lower()


def check_name(name: str) -> str:
    name = normalize(name)
    if not _NAME.match(name):
        raise AccountError(f"{name!r} is not a valid login: 1-64 characters of a-z 0-9 . _ @ + -, "
                           "starting with a letter or digit")
    return name


def add(url: str, name: str, role: Role, password_hash: str | None) -> User:
    name = check_name(name)
    with db.session(url) as s:
        if _by_name(s, name) is not None:
            raise AccountError(f"an account named {name} exists already")
        user = User(name=name, role=role, password_hash=password_hash)
        s.add(user)
        s.flush()
        return user


def users(url: str) -> list[User]:
    with db.reading(url) as s:
        return list(s.exec(select(User).order_by(col(User.name))))


def find(url: str, name: str) -> User | None:
    with db.reading(url) as s:
        return _by_name(s, normalize(name))


def set_disabled(url: str, name: str, disabled: bool) -> User:
    """Disabling also ends every session of the account at once."""
    with db.session(url) as s:
        user = _existing(s, name)
        user.disabled, user.disabled_at = disabled, now() if disabled else None
        if disabled:
            s.execute(delete(WebSession).where(col(WebSession.user_id) == user.id))
        return user


def set_password(url: str, name: str, password_hash: str) -> User:
    """A new password ends every session opened with the old one."""
    with db.session(url) as s:
        user = _existing(s, name)
        user.password_hash = password_hash
        s.execute(delete(WebSession).where(col(WebSession.user_id) == user.id))
        return user


def signed_in(url: str, user_id: int, session_id: str, address: str, expires_at: datetime,
              rehashed: str | None = None) -> None:
    """A successful sign-in: a session row, the time, a stronger hash if the parameters changed,
    and the account's failure count cleared."""
    with db.session(url) as s:
        user = s.get(User, user_id)
        if user is None:
            raise AccountError(f"no account with id {user_id}")
        user.last_login_at = now()
        if rehashed:
            user.password_hash = rehashed
        s.execute(delete(LoginFailure).where(col(LoginFailure.account) == user.name))
        s.execute(delete(WebSession).where(col(WebSession.expires_at) < now()))
        s.add(WebSession(id=session_id, user_id=user_id, address=address, expires_at=expires_at))


def session_user(url: str, session_id: str) -> User | None:
    """The account behind a live session; None when expired, ended or the account is disabled."""
    with db.reading(url) as s:
        return s.exec(select(User).join(WebSession).where(
            WebSession.id == session_id, col(WebSession.expires_at) > now(), col(User.disabled).is_(False))).first()


def end_session(url: str, session_id: str) -> None:
    with db.session(url) as s:
        s.execute(delete(WebSession).where(col(WebSession.id) == session_id))


@dataclass(frozen=True)
class Failures:
    account: int       # failed sign-ins for this login since the window started
    address: int       # ... from this address, whatever login they tried
    oldest: datetime | None   # the oldest one counted: throttling ends when it leaves the window


def failures(url: str, account: str, address: str, since: datetime) -> Failures:
    account = normalize(account)
    with db.reading(url) as s:
        recent = select(func.count(), func.min(LoginFailure.at)).where(col(LoginFailure.at) >= since)
        n_account, first_account = s.exec(recent.where(LoginFailure.account == account)).one()
        n_address, first_address = s.exec(recent.where(LoginFailure.address == address)).one()
    oldest = min((t for t in (first_account, first_address) if t is not None), default=None)
    return Failures(n_account, n_address, oldest)


def failed(url: str, account: str, address: str, forget_before: datetime) -> None:
    """Count a failed sign-in (whether or not the login exists); drop the ones too old to count."""
    with db.session(url) as s:
        s.execute(delete(LoginFailure).where(col(LoginFailure.at) < forget_before))
        s.add(LoginFailure(account=normalize(account)[:128], address=address))


def _by_name(s: Session, name: str) -> User | None:
    return s.exec(select(User).where(User.name == name)).first()


def _existing(s: Session, name: str) -> User:
    user = _by_name(s, normalize(name))
    if user is None:
        raise AccountError(f"no account named {normalize(name)}")
    return user
