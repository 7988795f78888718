"""A private Postfix instance for the tests: its own config, queue and log under one folder, SMTP on
one loopback port, and no way out (every non-local destination is the `error` transport).

The daemons run as `postfix` (mail_owner), so the folder must be one that user may enter; the
lmtp client runs chrooted in the queue directory, as Debian's master.cf ships it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .dovecot import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
HOSTNAME = "postfix.test.example"

MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
lmtp      unix  - - y -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {hostname}
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
default_transport = error:5.7.1 no mail leaves this test
relay_transport = error:5.7.1 no mail leaves this test
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
"""

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20) -> T:
    """`probe()` once it returns something, polling; an error naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := probe()) is not None:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout} s for {what}")


@dataclass
class Postfix:
    root: Path
    settings: str
    """main.cf lines of the test's own: the transport under test."""
    port: int = field(default_factory=free_port)
    master_pid: int | None = None

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def queue_dir(self) -> Path:
        return self.root / "queue"

    def start(self) -> Postfix:
        self.config_dir.mkdir(parents=True)
        self.queue_dir.mkdir(exist_ok=True)
        (self.root / "data").mkdir()
        shutil.chown(self.root / "data", "postfix")
        (self.config_dir / "master.cf").write_text(MASTER.format(port=self.port))
        (self.config_dir / "main.cf").write_text(MAIN.format(d=self.root, hostname=HOSTNAME) + self.settings)
        self._postfix("start")                     # runs `postfix check` first: creates the queue folders
        self.master_pid = int((self.queue_dir / "pid" / "master.pid").read_text())
        wait_for("Postfix's SMTP port", self._answers)
        return self

    def stop(self) -> None:
        if self.master_pid is None:
            return
        try:
            self._postfix("stop")
        finally:
            pid, self.master_pid = self.master_pid, None
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

    def send(self, sender: str, recipients: list[str], raw: bytes) -> dict[str, tuple[int, bytes]]:
        """Submit over SMTP; Postfix's refusals by recipient (empty: all queued)."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            return client.sendmail(sender, recipients, raw, mail_options=["BODY=8BITMIME"])

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def queue(self) -> list[dict[str, Any]]:
        """`postqueue -j`: one dict per queued message (queue_name, recipients with delay_reason)."""
        out = subprocess.run([POSTQUEUE, "-c", str(self.config_dir), "-j"], check=True, capture_output=True,
                             text=True, timeout=30).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def flush(self) -> None:
        """`postqueue -f`: try deferred mail now (and forget that a destination was down)."""
        subprocess.run([POSTQUEUE, "-c", str(self.config_dir), "-f"], check=True, capture_output=True, timeout=30)

    def _postfix(self, command: str) -> None:
        done = subprocess.run([POSTFIX, "-c", str(self.config_dir), command], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"postfix {command} failed: {done.stderr}{self.log()}")

    def _answers(self) -> bool | None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as client:
                return client.noop()[0] == 250 or None
        except OSError:
            return None
