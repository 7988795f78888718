"""`mailagent lmtp` as a real process on a free port (or a Unix socket), for tests and bench/lmtp.py."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .dovecot import free_port

CONFIG = '''[database]
url = "{url}"
[mailboxes.support]
address = "support@example.com"
[mailboxes.billing]
address = "Billing@Example.com"
'''


def write_config(folder: Path, url: str) -> Path:
    """A config with two mailboxes (support@, Billing@example.com) on the given database."""
    path = folder / "config.toml"
    path.write_text(CONFIG.format(url=url))
    return path


@dataclass
class Listener:
    config_file: Path
    socket_path: Path | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Listener:
        where = ["--socket", str(self.socket_path)] if self.socket_path else ["--port", str(self.port)]
        self.proc = subprocess.Popen([sys.executable, "-m", "mailagent", "--config", str(self.config_file), "lmtp",
                                      *where], stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mailagent lmtp exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                self.client().quit()
                return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("mailagent lmtp did not start listening")

    def client(self) -> smtplib.LMTP:
        if self.socket_path:
            return smtplib.LMTP(str(self.socket_path), timeout=30)
        return smtplib.LMTP("127.0.0.1", self.port, timeout=30)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        """SIGTERM, then what it logged."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.stderr.read().decode() if self.proc.stderr else ""


def deliver(client: smtplib.LMTP, sender: str, recipients: list[str], raw: bytes,
            options: tuple[str, ...] = ()) -> list[tuple[int, bytes]]:
    """One LMTP transaction: the RCPT replies, then one DATA reply per accepted recipient (smtplib's
    `sendmail` reads only the first)."""
    client.ehlo_or_helo_if_needed()
    code, text = client.mail(sender, list(options))
    assert code == 250, text
    rcpt = [client.rcpt(r) for r in recipients]
    accepted = [r for r, (code, _) in zip(recipients, rcpt, strict=True) if code == 250]
    if not accepted:
        client.rset()
        return rcpt
    data = [client.data(raw)]
    data += [client.getreply() for _ in accepted[1:]]
    return rcpt + data
