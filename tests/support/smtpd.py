"""aiosmtpd as the real SMTP server of the tests, scriptable: answer DATA with an error, refuse
recipients, or drop the connection while it holds the message."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from .dovecot import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    data_answer: str | None = None                 # e.g. "451 4.3.0 try later", "554 5.7.1 no"
    refuse: dict[str, str] = field(default_factory=dict)   # recipient -> answer
    drop_in_data: bool = False                     # take the message, then hang up without answering
    hold_data: threading.Event | None = None       # take the message, answer only once this is set
    stalled: int = 0                               # transactions held so far

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold_data is not None and not self.hold_data.is_set():
            self.stalled += 1
            while not self.hold_data.is_set():
                await asyncio.sleep(0.05)
        if self.drop_in_data:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            server.transport.close()
            return "250 OK"
        if self.data_answer:
            return self.data_answer
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 OK queued"


class SmtpServer:
    def __init__(self, port: int | None = None, *, smtputf8: bool = False) -> None:
        self.port = port or free_port()
        self.smtputf8 = smtputf8                   # offer SMTPUTF8 (RFC 6531) in EHLO
        self.handler = Handler()
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=self.smtputf8)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received


class SilentServer:
    """Accepts TCP connections and never says a word (a hung SMTP server before its greeting)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()
