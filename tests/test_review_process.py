"""The review page's setup as an operator does it: `mailagent users add` answering the password
prompt on a terminal, and `mailagent web` serving HTTPS itself with --tls-cert/--tls-key."""

from __future__ import annotations

import os
import pty
import re
import select
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from mailagent.store import accounts, db
from mailagent.web import passwords

from .support.web import SECRET, WebServer


def _read_until(fd: int, marker: bytes, timeout: float = 60) -> bytes:
    seen = b""
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise AssertionError(f"no {marker!r} in {seen!r}")
        try:
            chunk = os.read(fd, 1024)
        except OSError:                                      # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen


def _users_add_on_a_terminal(config: Path, answers: tuple[str, str]) -> tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:                                             # the child: its terminal is the pty
        os.execv(sys.executable, [sys.executable, "-m", "mailagent", "--config", str(config), "users", "add",
                                  "ben@example.com", "--role", "rep"])
    try:
        out = _read_until(fd, b"password for ben@example.com:")
        os.write(fd, answers[0].encode() + b"\n")
        out += _read_until(fd, b"again:")
        os.write(fd, answers[1].encode() + b"\n")
        out += _read_until(fd, b"\n\n", timeout=60)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_users_add_asks_for_the_password_twice_on_a_terminal(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    code, out = _users_add_on_a_terminal(config, ("a long password here", "a different one!"))
    assert code == 65 and b"the passwords differ" in out and accounts.find(sqlite_url, "ben@example.com") is None
    assert b"a long password here" not in out                              # not echoed
    code, out = _users_add_on_a_terminal(config, ("a long password here", "a long password here"))
    assert code == 0 and b"added ben@example.com (rep)" in out
    user = accounts.find(sqlite_url, "ben@example.com")
    assert user is not None and passwords.verify(user.password_hash, "a long password here")
    db.dispose()


def test_web_serves_https_itself_with_secure_cookies(tmp_path: Path, sqlite_url: str) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    context = ssl.create_default_context(cafile=str(cert))
    server = WebServer(config, {"MAILAGENT_WEB_SECRET": SECRET}, "--tls-cert", str(cert), "--tls-key", str(key),
                       tls=context)
    try:
        server.start()
        assert server.url.startswith("https://")
        with urllib.request.urlopen(server.url + "/review/login", context=context, timeout=10) as page:
            cookie = page.headers["set-cookie"]
            assert page.status == 200 and "Sign in" in page.read().decode()
        assert cookie.startswith("mailagent_login=") and "Secure" in cookie and "HttpOnly" in cookie
        assert re.search(r"(?i)samesite=strict", cookie)
    finally:
        server.stop()
    db.dispose()
