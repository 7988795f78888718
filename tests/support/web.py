"""`mailagent web` as a real server process, and headless Chromium (Debian's `chromium`, driven
by Playwright; no browser download) for the review page tests."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .dovecot import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SECRET = "test-session-secret-0123456789abcdefghijklmnop"
PASSWORD = "correct horse battery staple"


class WebServer:
    """`python -m mailagent --config FILE web --port N`, until stopped; its log is kept."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, *args: str,
                 tls: ssl.SSLContext | None = None) -> None:
        self.config, self.port, self.args, self.tls = config, free_port(), args, tls
        self.env = {**os.environ, "MAILAGENT_WEB_SECRET": SECRET, **(env or {})}
        self.log = config.with_name(f"web-{self.port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> WebServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailagent", "--config", str(self.config), "web", "--port", str(self.port), *self.args],
            env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mailagent web exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2, context=self.tls) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mailagent web did not answer within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def launch(playwright: Any) -> Any:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `apt-get install -y chromium` (scripts/test installs it)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def artifacts(tmp_path_factory: Any) -> Path:
    """Where screenshots go: $MAILAGENT_TEST_ARTIFACTS/screenshots, else pytest's temporary folder."""
    chosen = os.environ.get("MAILAGENT_TEST_ARTIFACTS")
    folder = Path(chosen) / "screenshots" if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
