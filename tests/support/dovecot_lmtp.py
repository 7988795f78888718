"""A throwaway Dovecot LMTP server in front of `mailagent lmtp`: mailboxes of its own (Maildir) and,
through `lmtp_proxy`, the support addresses handed on to the listener."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .dovecot import free_port, launch, terminate

BASE = """\
protocols = lmtp
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
default_internal_user = root
default_internal_group = root
default_login_user = nobody
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""

PROXY = """\
protocol lmtp {{
  lmtp_proxy = yes
}}
passdb {{
  driver = passwd-file
  args = username_format=%u {d}/etc/lmtp-proxy
}}
"""
"""The settings README's "Mail in" shows, with the passdb file under the test's folder."""


@dataclass
class DovecotLmtp:
    root: Path
    proxied: dict[str, int]
    """address -> the port of `mailagent lmtp` it is proxied to"""
    local: list[str]
    """addresses Dovecot delivers itself"""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> DovecotLmtp:
        for sub in ("etc", "mail", "run", "state"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        (self.root / "etc" / "lmtp-proxy").write_text(
            "".join(f"{a}:::::::proxy=y host=127.0.0.1 port={p}\n" for a, p in self.proxied.items())
            + "".join(f"{a}::::::::\n" for a in self.local))
        self.process = launch(self.root, (BASE + PROXY).format(d=self.root, port=self.port), self.port)
        return self

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def delivered(self, address: str) -> list[bytes]:
        """What Dovecot stored itself for a local address."""
        new = self.root / "mail" / address / "Maildir" / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []
