"""People who use the review page: accounts with a role, their sessions, failed logins."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import AutoString, Field, SQLModel

from mailagent.store.models.base import now


class Role(StrEnum):
    """Each role may do what the ones before it may: rep < lead < ops."""

    REP = "rep"        # works the queue: drafts, actions, takeovers, eval flags
    LEAD = "lead"      # plus quality figures and the eval flags of the team
    OPS = "ops"        # plus policy and accounts

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


class User(SQLModel, table=True):
    """An account. No password hash: the account signs in only through a trusted SSO proxy."""

    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)                  # the login, lower case; the actor in the audit log
    role: Role = Field(sa_type=AutoString)
    password_hash: str | None = None                # argon2id, PHC string
    disabled: bool = False
    created_at: datetime = Field(default_factory=now)
    disabled_at: datetime | None = None
    last_login_at: datetime | None = None


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token (signed); only its hash is stored,
    so a copy of the database opens no session. Logout and `users disable` delete the row."""

    __tablename__ = "web_session"
    id: str = Field(primary_key=True)               # sha256 of the token, hex
    user_id: int = Field(foreign_key="users.id", index=True)
    address: str = ""                               # where it was opened
    created_at: datetime = Field(default_factory=now)
    expires_at: datetime = Field(index=True)


class LoginFailure(SQLModel, table=True):
    """One failed sign-in, counted per account and per address for throttling."""

    __tablename__ = "login_failure"
    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(index=True)
    address: str = Field(index=True)
    at: datetime = Field(default_factory=now, index=True)
