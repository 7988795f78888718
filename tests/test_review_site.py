"""Accounts and the guard of the review page, over HTTP in-process (Starlette's test client):
sessions, CSRF, throttling, roles, trusted proxies, security headers; and `mailagent users`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from mailagent.config import ConfigError, Settings
from mailagent.store import accounts, db
from mailagent.store.models import Conversation, LoginFailure, Role, WebSession
from mailagent.web import auth, passwords, proxy, site
from mailagent.web.app import create_app
from mailagent.web.signing import Signer

from .conftest import make_settings
from .support.flow import draft, receive
from .support.mails import mail
from .support.web import PASSWORD, SECRET

BASE = "/review"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MAILAGENT_WEB_SECRET", SECRET)
    return SECRET


def people(url: str) -> None:
    for name, role in (("ben", Role.REP), ("lea", Role.LEAD), ("ana", Role.OPS)):
        accounts.add(url, name, role, passwords.hash_password(PASSWORD))


def client(settings: Settings, address: str = "198.51.100.7", **kw: Any) -> TestClient:
    return TestClient(create_app(settings), base_url="http://testserver", client=(address, 40000),
                      follow_redirects=False, **kw)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(c: TestClient, name: str, password: str = PASSWORD, **headers: str) -> Any:
    page = c.get(f"{BASE}/login", headers=headers)
    return c.post(f"{BASE}/login", data={"name": name, "password": password, "csrf": csrf_of(page.text)},
                  headers=headers)


@pytest.fixture
def web(sqlite_url: str, secret: str) -> Iterator[tuple[Settings, TestClient]]:
    people(sqlite_url)
    settings = make_settings(sqlite_url)
    with client(settings) as c:
        yield settings, c


# --- on and off ---------------------------------------------------------------------------------

def test_without_a_secret_the_review_page_is_off_and_says_how_to_turn_it_on(sqlite_url: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILAGENT_WEB_SECRET", raising=False)
    c = client(make_settings(sqlite_url))
    response = c.get(f"{BASE}/queue")
    assert response.status_code == 503 and "set MAILAGENT_WEB_SECRET" in response.text
    assert c.get("/healthz").json() == {"ok": True}
    assert c.get("/").headers["location"] == "/review/"


def test_a_short_secret_stops_startup(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILAGENT_WEB_SECRET", "too short")
    with pytest.raises(ConfigError, match="must hold at least 32 characters"):
        create_app(make_settings(sqlite_url))
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    done = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config), "web", "--port", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78 and "web.session_secret_env" in done.stderr and "at least 32" in done.stderr


# --- signing in ---------------------------------------------------------------------------------

def test_sign_in_sets_a_signed_http_only_cookie_and_sign_out_ends_it(web: tuple[Settings, TestClient]) -> None:
    settings, c = web
    assert c.get(f"{BASE}/queue").headers["location"] == "/review/login?next=/review/queue"
    response = sign_in(c, "BEN")                                  # logins are case-insensitive
    assert response.status_code == 303 and response.headers["location"] == "/review/queue"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("mailagent_session="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/review" in cookie
    assert "Secure" not in cookie                                   # plain HTTP, no trusted proxy said otherwise
    queue = c.get(f"{BASE}/queue")
    assert queue.status_code == 200 and "ben" in queue.text
    assert accounts.find(settings.database.url, "ben").last_login_at is not None  # type: ignore[union-attr]

    stolen = c.cookies.get("mailagent_session")
    assert c.post(f"{BASE}/logout", data={"csrf": csrf_of(queue.text)}).headers["location"] == "/review/login"
    replay = client(settings)
    replay.cookies.set("mailagent_session", stolen or "", path="/review")
    assert replay.get(f"{BASE}/queue").status_code == 303


def test_wrong_passwords_and_unknown_logins_get_the_same_answer(web: tuple[Settings, TestClient]) -> None:
    _, c = web
    wrong, unknown = sign_in(c, "ben", "not the password"), sign_in(c, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong login or password" in wrong.text and "wrong login or password" in unknown.text
    assert "mailagent_session" not in c.cookies


def test_forged_expired_and_disabled_sessions_are_refused(web: tuple[Settings, TestClient]) -> None:
    settings, c = web
    sign_in(c, "ben")
    good = c.cookies.get("mailagent_session") or ""
    token, _, tag = good.rpartition(".")
    for forged in (f"{token}.{tag[:-2]}xx",                                 # a signature that does not match
                   Signer("another secret of at least 32 characters!").sign("session", token),   # another key
                   token):                                                  # no signature
        other = client(settings)
        other.cookies.set("mailagent_session", forged, path="/review")
        assert other.get(f"{BASE}/queue").status_code == 303, forged
    other = client(settings)
    other.cookies.set("mailagent_session", good, path="/review")
    assert other.get(f"{BASE}/queue").status_code == 200                    # the cookie itself is the session
    with db.session(settings.database.url) as s:
        s.execute(update(WebSession).values(expires_at=WebSession.expires_at - timedelta(days=1)))  # type: ignore[operator]
    assert c.get(f"{BASE}/queue").status_code == 303                        # expired

    sign_in(c, "ben")
    assert c.get(f"{BASE}/queue").status_code == 200
    accounts.set_disabled(settings.database.url, "ben", True)
    assert c.get(f"{BASE}/queue").status_code == 303                        # disabled: its sessions ended
    again = sign_in(c, "ben")
    assert again.status_code == 403 and "this account is disabled" in again.text


def test_after_sign_in_only_pages_of_this_site_are_targets(web: tuple[Settings, TestClient]) -> None:
    _, c = web
    for target in ("//evil.example/", "https://evil.example/review/queue", "/review//evil.example", "/elsewhere"):
        page = c.get(f"{BASE}/login", params={"next": target})
        response = c.post(f"{BASE}/login", params={"next": target},
                          data={"name": "ben", "password": PASSWORD, "csrf": csrf_of(page.text)})
        assert response.headers["location"] == "/review/queue", target
    page = c.get(f"{BASE}/login", params={"next": "/review/actions"})
    response = c.post(f"{BASE}/login", params={"next": "/review/actions"},
                      data={"name": "ben", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert response.headers["location"] == "/review/actions"


def test_the_sign_in_form_needs_its_own_token(web: tuple[Settings, TestClient], sqlite_url: str) -> None:
    settings, c = web
    assert c.post(f"{BASE}/login", data={"name": "ben", "password": PASSWORD}).status_code == 403
    token = csrf_of(client(settings).get(f"{BASE}/login").text)             # another browser's token
    c.get(f"{BASE}/login")
    assert c.post(f"{BASE}/login", data={"name": "ben", "password": PASSWORD, "csrf": token}).status_code == 403


# --- throttling ---------------------------------------------------------------------------------

def test_sign_ins_are_throttled_per_account(web: tuple[Settings, TestClient]) -> None:
    settings, c = web
    for _ in range(settings.web.login_failures_per_account):
        assert sign_in(c, "ben", "guess").status_code == 401
    refused = sign_in(c, "ben")                                             # even the right password now
    assert refused.status_code == 429 and "too many failed sign-ins for this account" in refused.text
    assert "15 minutes" in refused.text
    assert client(settings, "203.0.113.9").get(f"{BASE}/login").status_code == 200
    assert sign_in(client(settings, "203.0.113.9"), "ben").status_code == 429   # from anywhere
    assert sign_in(c, "lea").status_code == 303                              # other accounts are fine
    with db.session(settings.database.url) as s:                             # the window passes
        s.execute(update(LoginFailure).values(at=LoginFailure.at - timedelta(minutes=16)))  # type: ignore[operator]
    assert sign_in(c, "ben").status_code == 303


def test_sign_ins_are_throttled_per_address(sqlite_url: str, secret: str) -> None:
    people(sqlite_url)
    settings = make_settings(sqlite_url, web={"login_failures_per_address": 3})
    c = client(settings, "203.0.113.50")
    for name in ("x1", "x2", "ben"):
        assert sign_in(c, name, "guess").status_code == 401
    refused = sign_in(c, "lea")
    assert refused.status_code == 429 and "for this address" in refused.text
    assert sign_in(client(settings, "203.0.113.51"), "lea").status_code == 303


# --- CSRF and roles -----------------------------------------------------------------------------

def _post_routes(settings: Settings) -> list[str]:
    mounted = next(r for r in site.routes(settings) if isinstance(r, Mount))
    return [r.path for r in mounted.routes
            if isinstance(r, Route) and "POST" in (r.methods or ()) and r.path != "/login"]


def test_every_form_refuses_a_post_without_its_token(sqlite_url: str, secret: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, smtp={"port": 1})
    people(sqlite_url)
    [outcome] = receive(settings, mail(1))
    assert outcome.draft_id is not None
    with db.reading(sqlite_url) as s:
        [conversation] = s.exec(select(Conversation)).all()
    c = client(settings)
    sign_in(c, "ana")
    paths = _post_routes(settings)
    assert {"/logout", "/drafts/{id:int}/approve", "/drafts/{id:int}/reject", "/actions/{id:int}/approve",
            "/actions/{id:int}/reject", "/conversations/{id:int}/take", "/conversations/{id:int}/release",
            "/conversations/{id:int}/flag", "/suggestions/{id:int}/accept", "/suggestions/{id:int}/reject",
            "/evals/accept", "/evals/drop", "/evals/{id:int}/tag"} == set(paths)
    for path in paths:
        target = BASE + path.replace("{id:int}", str(conversation.id if "conversations" in path else outcome.draft_id))
        for form in ({}, {"csrf": "forged"}, {"csrf": ""}):
            response = c.post(target, data={**form, "reason": "r", "note": "n", "text": "t", "mode": "edit"})
            assert response.status_code == 403 and "security token" in response.text, (path, form)
    assert c.get(f"{BASE}/queue").status_code == 200                         # still signed in: logout refused too
    with db.reading(sqlite_url) as s:
        assert s.get(Conversation, conversation.id).taken_by is None         # type: ignore[union-attr]
    assert draft(settings, outcome.draft_id).state == "held"


def test_roles_decide_which_pages_open(web: tuple[Settings, TestClient]) -> None:
    settings, _ = web
    lead = {"/queue", "/actions", "/quality", "/flags", "/evals", "/suggestions", "/knowledge"}
    allowed = {"ben": {"/queue", "/actions"}, "lea": lead, "ana": lead | {"/ops"}}
    for name, pages in allowed.items():
        c = client(settings)
        sign_in(c, name)
        for page in sorted(allowed["ana"]):
            response = c.get(BASE + page)
            assert response.status_code == (200 if page in pages else 403), (name, page)


def test_pages_carry_security_headers(web: tuple[Settings, TestClient]) -> None:
    _, c = web
    sign_in(c, "ben")
    for path in ("/login", "/queue", "/static/app.js"):
        headers = c.get(BASE + path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert "no-store" in c.get(f"{BASE}/queue").headers["cache-control"]


# --- proxies ------------------------------------------------------------------------------------

def test_forwarded_headers_count_only_from_trusted_proxies(sqlite_url: str, secret: str) -> None:
    people(sqlite_url)
    settings = make_settings(sqlite_url, web={"trusted_proxies": ["10.0.0.0/24"]})
    https = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.77, 10.0.0.2"}

    def login_cookie(c: TestClient) -> str:
        return next(h for h in c.get(f"{BASE}/login", headers=https).headers.get_list("set-cookie")
                    if h.startswith("mailagent_login="))

    assert "Secure" in login_cookie(client(settings, "10.0.0.2"))          # the proxy says the browser used HTTPS
    assert "Secure" not in login_cookie(client(settings, "198.51.100.20"))  # anyone else saying so is ignored
    direct_tls = TestClient(create_app(settings), base_url="https://testserver", client=("198.51.100.20", 1),
                            follow_redirects=False)
    assert any("Secure" in h for h in sign_in(direct_tls, "ben").headers.get_list("set-cookie")
               if h.startswith("mailagent_session="))

    forwarded = {"x-forwarded-for": "203.0.113.77, 10.0.0.2"}
    sign_in(client(settings, "10.0.0.2"), "lea", "guess", **forwarded)      # counted for the real client address
    sign_in(client(settings, "198.51.100.20"), "lea", "guess", **{"x-forwarded-for": "192.0.2.1"})  # for the peer
    with db.reading(sqlite_url) as s:
        addresses = sorted(f.address for f in s.exec(select(LoginFailure)))
    assert addresses == ["198.51.100.20", "203.0.113.77"]
    always = make_settings(sqlite_url, web={"secure_cookies": "always"})
    assert "Secure" in login_cookie(client(always, "198.51.100.20"))


def test_proxy_sign_in_only_from_configured_proxies(sqlite_url: str, secret: str) -> None:
    people(sqlite_url)
    accounts.add(sqlite_url, "sso-only", Role.REP, None)
    settings = make_settings(sqlite_url, web={"trusted_proxies": ["10.0.0.2"], "proxy_auth": True})
    receive(make_settings(sqlite_url, smtp={"port": 1}), mail(1))
    proxied = client(settings, "10.0.0.2", headers={"X-Forwarded-User": "sso-only"})
    queue = proxied.get(f"{BASE}/queue")
    assert queue.status_code == 200 and "sso-only" in queue.text and "Sign out" not in queue.text
    page = proxied.get(f"{BASE}/conversations/1")
    assert proxied.post(f"{BASE}/conversations/1/take", data={}).status_code == 403          # CSRF still applies
    assert proxied.post(f"{BASE}/conversations/1/take", data={"csrf": csrf_of(page.text)}).status_code == 303
    with db.reading(sqlite_url) as s:
        assert s.get(Conversation, 1).taken_by == "sso-only"                                # type: ignore[union-attr]

    direct = client(settings, "198.51.100.9", headers={"X-Forwarded-User": "ana"})           # not from the proxy
    assert direct.get(f"{BASE}/ops").status_code == 303
    unknown = client(settings, "10.0.0.2", headers={"X-Forwarded-User": "mallory"})
    refused = unknown.get(f"{BASE}/queue")
    assert refused.status_code == 403 and "no enabled account named &#39;mallory&#39;" in refused.text
    assert sign_in(client(settings), "sso-only", "").status_code == 401                       # no password to guess
    accounts.set_disabled(sqlite_url, "sso-only", True)
    assert proxied.get(f"{BASE}/queue").status_code == 403
    off = make_settings(sqlite_url, web={"trusted_proxies": ["10.0.0.2"], "proxy_auth": False})
    assert client(off, "10.0.0.2", headers={"X-Forwarded-User": "ana"}).get(f"{BASE}/queue").status_code == 303


def test_proxy_helpers() -> None:
    nets = proxy.networks(["10.0.0.0/8", "::1"])
    assert proxy.trusted("10.1.2.3", nets) and proxy.trusted("::1", nets) and not proxy.trusted("testclient", nets)
    assert proxy.client_address("198.51.100.1, 203.0.113.5, 10.0.0.9", nets) == "203.0.113.5"
    assert proxy.client_address("10.0.0.3, 10.0.0.9", nets) == "10.0.0.3"
    assert proxy.client_address("not an address", nets) is None
    with pytest.raises(ValueError, match="expected an IP address or network"):
        make_settings("sqlite://", web={"trusted_proxies": ["proxy.example"]})


def test_signer_and_throttle_rules() -> None:
    signer = Signer(SECRET)
    signed = signer.sign("session", "abc")
    assert signer.unsign("session", signed) == "abc" and signer.unsign("flash", signed) is None
    assert signer.unsign("session", "abc") is None and signer.unsign("session", None) is None
    with pytest.raises(ValueError):
        Signer("short")
    web = make_settings("sqlite://").web
    at = accounts.now()
    assert auth.throttle(accounts.Failures(4, 19, at), web, at) is None
    assert "this account" in (auth.throttle(accounts.Failures(5, 0, at - timedelta(minutes=10)), web, at) or "")
    assert "about 5 minutes" in (auth.throttle(accounts.Failures(5, 0, at - timedelta(minutes=10)), web, at) or "")
    assert "this address" in (auth.throttle(accounts.Failures(0, 20, at), web, at) or "")


def test_passwords() -> None:
    hashed = passwords.hash_password("a long enough password")
    assert hashed.startswith("$argon2id$") and passwords.verify(hashed, "a long enough password")
    assert not passwords.verify(hashed, "a long enough passwore") and not passwords.verify(None, "")
    assert not passwords.verify("not a hash", "x")
    with pytest.raises(passwords.WeakPassword, match="at least 10"):
        passwords.check_strength("short", "ben")
    with pytest.raises(passwords.WeakPassword, match="not be the login"):
        passwords.check_strength("ben@example.com", "BEN@example.com")


# --- mailagent users ----------------------------------------------------------------------------

def test_users_command(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')

    def users(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config), "users", *args],
                              input=stdin, capture_output=True, text=True, timeout=120)

    added = users("add", "Ana@Example.com", "--role", "ops", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0 and "added ana@example.com (ops)" in added.stdout
    assert users("add", "ana@example.com", "--role", "rep", "--password-stdin", stdin=PASSWORD).returncode == 1
    weak = users("add", "bo", "--role", "rep", "--password-stdin", stdin="short\n")
    assert weak.returncode == 65 and "at least 10 characters" in weak.stderr
    no_tty = users("add", "bo", "--role", "rep", stdin="")
    assert no_tty.returncode == 65 and "--password-stdin" in no_tty.stderr
    assert users("add", "bad name!", "--role", "rep", "--no-password").returncode == 1
    assert users("add", "sso", "--role", "lead", "--no-password").returncode == 0
    listed = json.loads(users("list", "--json").stdout)
    assert [(u["name"], u["role"], u["password"], u["disabled"]) for u in listed] == [
        ("ana@example.com", "ops", True, False), ("sso", "lead", False, False)]
    assert set(listed[0]) == {"id", "name", "role", "disabled", "password", "created_at", "last_login_at"}
    stored = accounts.find(sqlite_url, "ana@example.com")
    assert stored is not None and passwords.verify(stored.password_hash, PASSWORD)

    assert "disabled" in users("disable", "ana@example.com").stdout
    assert accounts.find(sqlite_url, "ana@example.com").disabled                              # type: ignore[union-attr]
    assert users("enable", "ana@example.com").returncode == 0
    assert not accounts.find(sqlite_url, "ana@example.com").disabled                          # type: ignore[union-attr]
    assert users("disable", "nobody").returncode == 1
    changed = users("password", "ana@example.com", "--password-stdin", stdin="another long password\n")
    assert changed.returncode == 0 and "sessions have ended" in changed.stdout
    stored = accounts.find(sqlite_url, "ana@example.com")
    assert stored is not None and passwords.verify(stored.password_hash, "another long password")
    assert "ana@example.com" in users("list").stdout
    db.dispose()

