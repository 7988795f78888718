"""A throwaway Dovecot IMAP server for the tests: all state in one temporary folder, one port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
PASSWORD = "secret"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = root
default_internal_group = root
default_login_user = nobody
mail_max_userip_connections = 200
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/etc/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(root: Path, config: str, port: int) -> subprocess.Popen[bytes]:
    """Dovecot in the foreground on `root/etc/dovecot.conf` (`config`), once it answers on `port`."""
    (root / "etc" / "dovecot.conf").write_text(config)
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "etc" / "dovecot.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {(root / 'dovecot.log').read_text(errors='replace')}")
            time.sleep(0.05)
    terminate(process)
    raise RuntimeError("dovecot did not start listening")


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@dataclass
class Dovecot:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    users: int = 40

    def user(self, n: int) -> str:
        return f"user{n}@example.com"

    def start(self) -> Dovecot:
        for sub in ("etc", "mail", "run", "state"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        (self.root / "etc" / "users").write_text(
            "".join(f"{self.user(n)}:{{PLAIN}}{PASSWORD}\n" for n in range(self.users)))
        self.process = launch(self.root, CONFIG.format(d=self.root, port=self.port), self.port)
        return self

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def kick(self, user: str) -> None:
        """End the user's sessions from the server side, as an admin would (`doveadm kick`)."""
        subprocess.run([DOVEADM, "-c", str(self.root / "etc" / "dovecot.conf"), "kick", user],
                       check=True, capture_output=True, timeout=10)

    def client(self, user: str) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(user, PASSWORD)
        return c

    def append(self, user: str, folder: str, *messages: bytes) -> None:
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for raw in messages:
                c.append(folder, raw)

    def recreate(self, user: str, folder: str) -> None:
        """Delete and create the folder again: a new UIDVALIDITY, as after a server rebuild."""
        with self.client(user) as c:
            c.delete_folder(folder)
            c.create_folder(folder)
