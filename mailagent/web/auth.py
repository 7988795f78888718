"""Who is asking: a signed session cookie (after a password sign-in), or the user header of a
trusted SSO proxy. CSRF tokens are bound to the session (or to the proxy user), sign-ins are
throttled per account and per address, and every check here is blocking database work (call
it from a thread)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from mailagent.config import Settings, Web
from mailagent.store import accounts
from mailagent.store.accounts import Failures
from mailagent.store.models import Role, User, now
from mailagent.web import passwords
from mailagent.web.proxy import VIA_PROXY
from mailagent.web.signing import Signer

SESSION_COOKIE = "mailagent_session"
LOGIN_COOKIE = "mailagent_login"       # a nonce that binds the sign-in form's CSRF token


@dataclass(frozen=True)
class Visitor:
    user: User
    csrf_key: str                       # what the CSRF token is bound to
    session_id: str | None = None       # None: signed in by the proxy header

    def may(self, needed: Role) -> bool:
        return Role(self.user.role).allows(needed)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: a session token for the cookie, or why not (and the status)."""

    token: str | None = None
    user: User | None = None
    error: str = ""
    status: int = 200


def throttle(failures: Failures, web: Web, at: datetime) -> str | None:
    """Why a sign-in is refused before the password is even checked, or None."""
    if failures.account < web.login_failures_per_account and failures.address < web.login_failures_per_address:
        return None
    whom = "this account" if failures.account >= web.login_failures_per_account else "this address"
    until = (failures.oldest or at) + timedelta(seconds=web.login_window_seconds)
    minutes = max(1, round((until - at).total_seconds() / 60))
    return f"too many failed sign-ins for {whom}: try again in about {minutes} minute{'s' * (minutes != 1)}"


def session_id(token: str) -> str:
    """Only the hash of a session token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    def __init__(self, settings: Settings, signer: Signer) -> None:
        self.settings, self.web, self.url, self.signer = settings, settings.web, settings.database.url, signer

    # --- who is asking ---------------------------------------------------------------------

    def visitor(self, request: Request) -> Visitor | None:
        if self.web.proxy_auth and request.scope.get(VIA_PROXY):
            name = request.headers.get(self.web.proxy_user_header, "").strip()
            if name:
                user = accounts.find(self.url, name)
                if user is None or user.disabled:
                    return None
                return Visitor(user, f"proxy:{user.name}")
        token = self.signer.unsign("session", request.cookies.get(SESSION_COOKIE))
        if token is None:
            return None
        sid = session_id(token)
        user = accounts.session_user(self.url, sid)
        return Visitor(user, f"session:{sid}", sid) if user else None

    def proxy_user_refused(self, request: Request) -> str | None:
        """The name a trusted proxy sent when it has no (enabled) account here."""
        if self.web.proxy_auth and request.scope.get(VIA_PROXY):
            name = request.headers.get(self.web.proxy_user_header, "").strip()
            return name or None
        return None

    # --- CSRF ------------------------------------------------------------------------------

    def csrf_token(self, visitor: Visitor) -> str:
        return self.signer.tag("csrf", visitor.csrf_key)

    def csrf_ok(self, visitor: Visitor, token: str | None) -> bool:
        return self.signer.matches("csrf", visitor.csrf_key, token)

    def login_form_token(self, nonce: str) -> str:
        return self.signer.tag("login-csrf", nonce)

    def login_form_ok(self, request: Request, token: str | None) -> bool:
        nonce = request.cookies.get(LOGIN_COOKIE)
        return bool(nonce) and self.signer.matches("login-csrf", nonce or "", token)

    # --- signing in and out ----------------------------------------------------------------

    def sign_in(self, name: str, password: str, address: str) -> SignIn:
        at = now()
        window = at - timedelta(seconds=self.web.login_window_seconds)
        refused = throttle(accounts.failures(self.url, name, address, window), self.web, at)
        if refused:
            return SignIn(error=refused, status=429)
        user = accounts.find(self.url, name) if name.strip() else None
        if not passwords.verify(user.password_hash if user else None, password) or user is None:
            accounts.failed(self.url, name, address, forget_before=window)
            return SignIn(error="wrong login or password", status=401)
        if user.disabled:
            return SignIn(error="this account is disabled", status=403)
        assert user.id is not None and user.password_hash is not None
        token = secrets.token_urlsafe(32)
        rehashed = passwords.hash_password(password) if passwords.needs_rehash(user.password_hash) else None
        accounts.signed_in(self.url, user.id, session_id(token), address,
                           at + timedelta(hours=self.web.session_hours), rehashed)
        return SignIn(token=token, user=user)

    def sign_out(self, visitor: Visitor) -> None:
        if visitor.session_id:
            accounts.end_session(self.url, visitor.session_id)

    # --- cookies ---------------------------------------------------------------------------

    def secure(self, request: Request) -> bool:
        if self.web.secure_cookies == "auto":
            return request.url.scheme == "https"
        return self.web.secure_cookies == "always"

    def set_cookie(self, response: Response, request: Request, name: str, value: str, max_age: int | None,
                   samesite: str = "lax") -> None:
        response.set_cookie(name, value, max_age=max_age, path=_root(request), httponly=True,
                            secure=self.secure(request), samesite=samesite)  # type: ignore[arg-type]

    def clear_cookie(self, response: Response, request: Request, name: str) -> None:
        response.delete_cookie(name, path=_root(request), httponly=True, secure=self.secure(request), samesite="lax")

    def session_cookie(self, response: Response, request: Request, token: str) -> None:
        self.set_cookie(response, request, SESSION_COOKIE, self.signer.sign("session", token),
                        int(self.web.session_hours * 3600))


def _root(request: Request) -> str:
    return request.scope.get("root_path") or "/"
