"""Passwords: argon2id hashes (argon2-cffi, RFC 9106 parameters), verified in constant time. An
unknown login is checked against a dummy hash, so timing does not tell which logins exist."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
_hasher = PasswordHasher()


class WeakPassword(ValueError):
    """A password that may not be set; the message says why."""


def check_strength(password: str, login: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password must be at least {MIN_LENGTH} characters long")
    if password.strip().lower() == login.strip().lower():
        raise WeakPassword("the password must not be the login")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy() -> str:
    return _hasher.hash("not a password anyone has")


def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; None (no account, or an SSO-only account) never does,
    after the same work as a real check."""
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """The hash was made with weaker parameters than today's: store a new one at the next login."""
    return _hasher.check_needs_rehash(stored)
