"""`mailagent lmtp`: a long-running LMTP listener, so Postfix or Dovecot hand mail to one process
instead of starting `mailagent ingest` per message.

A message is acknowledged only once its transaction has committed: `250` per recipient after the
commit, `451` (try again) per recipient when storing failed, `550` at RCPT for an address that is
no configured mailbox. Messages arriving together on any connection are committed together by
one writer thread (a group commit), so the commit cost is shared and every client waits only for
the commit that holds its message. The mailbox is the first recipient's; a message sent to two
of our mailboxes is stored once (one row per Message-ID, as from IMAP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import threading
from concurrent.futures import Future
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import syntax

from mailagent.config import Settings
from mailagent.pipeline.ingest import Inbound, store
from mailagent.store import plain
from mailagent.worker import dispatch

log = logging.getLogger(__name__)

BATCH = 500
"""Messages per transaction at most."""


def mailbox_for(settings: Settings, address: str) -> str | None:
    """The configured mailbox whose address this recipient is (case does not matter); None if none."""
    wanted = address.strip().strip("<>").lower()
    return next((name for name, m in settings.mailboxes.items() if m.address == wanted), None)


def without_orcpt(arg: str) -> str:
    """RCPT's argument without ORCPT parameters. Dovecot's LMTP proxy sends `ORCPT=rfc822;ADDRESS`
    whenever the address it forwards differs from the one it got (`SUPPORT@Example.com` looked up as
    `support@example.com`) even to a server that does not offer DSN; aiosmtpd refuses any RCPT
    parameter with a permanent 555, so that mail would bounce. ORCPT only names the original
    address for DSNs, which we do not send."""
    address, sep, params = arg.rpartition(">")
    if not sep:
        return arg
    kept = [p for p in params.split(" ") if not p.upper().startswith("ORCPT=")]
    return address + sep + " ".join(kept).rstrip()


def replies(recipients: list[str], code: str) -> str:
    """LMTP's answer to DATA: one reply line per accepted recipient, in RCPT order (RFC 2033 4.2)."""
    text = {"250": "2.0.0 stored", "451": "4.3.0 storage unavailable, try again later"}[code]
    return "\r\n".join(f"{code} {text} <{rcpt}>" for rcpt in recipients)


class Server(LMTP):
    """aiosmtpd's LMTP, tolerant of the ORCPT that Dovecot's proxy sends (see without_orcpt)."""

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        await super().smtp_RCPT(without_orcpt(arg) if arg else arg)

    ADDRESSES = 256
    """Parsed MAIL and RCPT arguments kept per connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.addresses: dict[str, tuple[str | None, str | None]] = {}

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's parse of a MAIL or RCPT argument, once per argument and connection. It costs
        ~45 µs (the email header parser, and a `typing.Protocol` class defined per call), 8% of
        the listener's CPU per message, and an MTA that keeps its connection open sends the same
        RCPT (our mailboxes) and often the same MAIL again and again."""
        if arg not in self.addresses:
            if len(self.addresses) >= self.ADDRESSES:
                self.addresses.clear()
            self.addresses[arg] = super()._getaddr(arg)
        return self.addresses[arg]


class Committer:
    """The writer thread: takes every message waiting, stores them in one transaction, then
    answers each one's future (its id, or the error that made the transaction fail)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.opened: plain.Opened | None = None      # kept between batches; reopened after a failure
        self.pending: queue.Queue[tuple[Inbound, Future[int | None]] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="lmtp-commit", daemon=True)
        self.thread.start()

    def submit(self, item: Inbound) -> Future[int | None]:
        future: Future[int | None] = Future()
        self.pending.put((item, future))
        return future

    def close(self) -> None:
        self.pending.put(None)
        self.thread.join()

    def _run(self) -> None:
        while (first := self.pending.get()) is not None:
            batch = [first]
            while len(batch) < BATCH:
                try:
                    more = self.pending.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.pending.put(None)         # stop after this batch
                    break
                batch.append(more)
            self._commit(batch)
        if self.opened is not None:
            self.opened.close()

    def _commit(self, batch: list[tuple[Inbound, Future[int | None]]]) -> None:
        try:
            self.opened = self.opened or plain.Opened(self.settings.database.url)
            with self.opened.transaction(write=True, durable=True) as conn:
                ids = store(conn, [item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiting client is told to retry
            self._reset()
            log.error("LMTP: storing %d message(s) failed: %s: %s", len(batch), type(exc).__name__, exc)
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), ident in zip(batch, ids, strict=True):
            future.set_result(ident)
        new = [i for i in ids if i is not None]
        try:
            dispatch.stored(self.settings, new)
        except Exception as exc:  # noqa: BLE001 - stored is what counts; the sweeper enqueues later
            log.warning("LMTP: stored %d message(s), but could not hand them to the workers: %s", len(new), exc)


    def _reset(self) -> None:
        if self.opened is not None:
            with contextlib.suppress(Exception):       # a broken connection may not close cleanly
                self.opened.close()
            self.opened = None


class Handler:
    """aiosmtpd hooks: recipients checked at RCPT, the message stored at DATA."""

    def __init__(self, settings: Settings, committer: Committer) -> None:
        self.settings, self.committer = settings, committer

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if mailbox_for(self.settings, address) is None:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or b""
        item = Inbound(raw, "lmtp", mailbox_for(self.settings, envelope.rcpt_tos[0]))
        try:
            await asyncio.wrap_future(self.committer.submit(item))
        except Exception:  # noqa: BLE001 - logged by the committer; the MTA keeps the message
            return replies(envelope.rcpt_tos, "451")
        return replies(envelope.rcpt_tos, "250")


async def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
                socket_path: str | None = None) -> None:
    """Listen until SIGTERM or SIGINT; messages being stored are answered before it stops."""
    committer = Committer(settings)
    handler = Handler(settings, committer)
    loop = asyncio.get_running_loop()

    def factory() -> Server:
        # SMTPUTF8: an MTA bounces international mail a server does not take; the bytes are stored as received.
        return Server(handler, hostname="mailagent", ident="mailagent LMTP", enable_SMTPUTF8=True, loop=loop)

    if socket_path:
        server = await loop.create_unix_server(factory, socket_path)
        # Postfix's lmtp client runs as its own user and must be able to connect (write); who may reach
        # the socket is decided by its directory's permissions, as for Dovecot's LMTP socket (0666).
        os.chmod(socket_path, 0o666)
    else:
        server = await loop.create_server(factory, host or "127.0.0.1", port or 24)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = socket_path or f"{host or '127.0.0.1'}:{port or 24}"
    log.warning("LMTP listening on %s for %s", where, ", ".join(m.address for m in settings.mailboxes.values()))
    try:
        await stop.wait()
    finally:
        server.close()                               # open connections end with the process
        await asyncio.to_thread(committer.close)
