"""Run command lines as a person pastes them into a shell: one `bash -c` per line, a line ending
in `&` started in the background (and stopped by its PID when the block is done)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Block:
    cwd: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ran: list[tuple[str, int, str, str]] = field(default_factory=list)     # line, code, stdout, stderr

    def run(self, line: str, wait_for_port: int | None = None) -> tuple[int, str, str]:
        command = line.split(" #", 1)[0].strip()
        if command.endswith("&"):
            self.background.append(subprocess.Popen(["bash", "-c", f"exec {command[:-1]}"], cwd=self.cwd,
                                                    env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            if wait_for_port:
                _wait_for(wait_for_port)
            self.ran.append((line, 0, "", ""))
            return 0, "", ""
        proc = subprocess.run(["bash", "-c", line], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=180, check=False)
        self.ran.append((line, proc.returncode, proc.stdout, proc.stderr))
        return proc.returncode, proc.stdout, proc.stderr

    def stop(self) -> bytes:
        """Stop what runs in the background; what it printed."""
        printed = b""
        for proc in self.background:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
            printed += out or b""
        self.background.clear()
        return printed


def _wait_for(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {seconds} s")
