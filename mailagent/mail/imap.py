"""IMAP: connect, fetch new messages in batches, mark or move them, APPEND sent replies, and IDLE.

imapclient 4.1 fails on string message sets, so every call takes lists of int UIDs. Fetches use
`BODY.PEEK[]`, which leaves `\\Seen` alone: reading mail for the agent must not look like a
human read it.
"""

from __future__ import annotations

import logging
import select as io_select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from mailagent.config import Imap, secret

log = logging.getLogger(__name__)

Batch = list[tuple[int, bytes]]
T = TypeVar("T")


def connect(cfg: Imap) -> IMAPClient:
    """A logged-in client; `security` picks implicit TLS, STARTTLS or plain (tests, localhost)."""
    client = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.security == "ssl",
                        ssl_context=ssl.create_default_context(), timeout=cfg.timeout_seconds)
    quiet(client)
    try:
        if cfg.security == "starttls":
            client.starttls(ssl.create_default_context())
        if cfg.oauth2_token_env:
            client.oauth2_login(cfg.user, secret("imap.oauth2_token_env", cfg.oauth2_token_env))
        else:
            client.login(cfg.user, secret("imap.password_env", cfg.password_env))
    except BaseException:
        client.shutdown()
        raise
    return client


def quiet(client: IMAPClient) -> None:
    """Keep imaplib from writing debug messages nobody reads.

    imapclient sets imaplib's debug level to 5 and sends its messages to the `imapclient.imaplib`
    logger, so imaplib formats the repr of every response it reads, whole messages included,
    before the logger drops them: 40% of a fetch's CPU (`bench/ingest.py`). The level goes back to
    imaplib's default unless that logger would print DEBUG; then the messages are still there."""
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def select(client: IMAPClient, cfg: Imap) -> int:
    """Select the folder (read-only when nothing is written back); its UIDVALIDITY."""
    info = client.select_folder(cfg.folder, readonly=cfg.after_ingest == "nothing")
    return int(info[b"UIDVALIDITY"])


def fetch_new(client: IMAPClient, last_uid: int, batch_size: int) -> Iterator[Batch]:
    """(uid, raw bytes) of every message above `last_uid`, in UID order, `batch_size` at a time.

    The server answers `UID n:*` with the highest UID even when it is below n: filter."""
    uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
    for start in range(0, len(uids), batch_size):
        chunk = uids[start:start + batch_size]
        data = client.fetch(chunk, ["BODY.PEEK[]"])
        batch = [(uid, data[uid][b"BODY[]"]) for uid in chunk if uid in data and b"BODY[]" in data[uid]]
        if batch:
            yield batch


class FolderError(IMAPClientError):
    """A folder we must write to is missing and the server will not create it (a bad name, no
    rights): a configuration problem that retrying does not fix."""


def into_folder(client: IMAPClient, folder: str, purpose: str, command: Callable[[], T]) -> T:
    """Run `command` (an APPEND, COPY or MOVE into `folder`); when the server answers that the
    folder does not exist (`[TRYCREATE]`, RFC 3501 6.3.11), create it and run it once more."""
    try:
        return command()
    except IMAPClientError as exc:
        if isinstance(exc, IMAPClientAbortError):           # the connection, not the folder
            raise
        if "TRYCREATE" not in str(exc):
            raise FolderError(f"cannot write to the {purpose} folder {folder!r}: {exc}") from exc
    try:
        client.create_folder(folder)
        log.info("created the %s folder %r", purpose, folder)
    except IMAPClientError as exc:
        if not client.folder_exists(folder):                 # else another process just made it
            raise FolderError(f"the {purpose} folder {folder!r} does not exist and the server would not "
                              f"create it: {exc}") from exc
    return command()


def after_ingest(client: IMAPClient, cfg: Imap, uids: list[int]) -> None:
    """Mark or move messages once stored, so people using the same mailbox can see what we took."""
    if not uids:
        return
    if cfg.after_ingest == "flag":
        client.add_flags(uids, [cfg.flag], silent=True)
    elif cfg.after_ingest == "move" and cfg.move_to:
        target = cfg.move_to
        if client.has_capability("MOVE"):
            into_folder(client, target, "move_to", lambda: client.move(uids, target))
        else:
            into_folder(client, target, "move_to", lambda: client.copy(uids, target))
            client.add_flags(uids, [b"\\Deleted"], silent=True)
            client.uid_expunge(uids)


def append_sent(cfg: Imap, raw: bytes, when: datetime) -> None:
    """Keep a copy of a sent reply in the mailbox's Sent folder, as a mail client would."""
    folder = cfg.sent_folder
    assert folder
    with connect(cfg) as client:
        into_folder(client, folder, "sent_folder",
                    lambda: client.append(folder, raw, flags=[b"\\Seen"], msg_time=when))


class IdleWatcher:
    """Hold IMAP IDLE on one folder and call `on_mail` when something arrives.

    IDLE is a hint, never the only path: the clock polls anyway. After every (re)connect the
    watcher calls `on_mail` once, so whatever arrived while it was away is fetched (a full resync).
    imapclient's `idle_check` swallows the end of the connection and returns nothing, so a server
    that said BYE (`doveadm kick`, a restart) or hung up is noticed here, within one `CHECK_SECONDS`,
    and the watcher reconnects at once (then with a backoff while the server stays away). IDLE is
    also renewed every `idle_refresh_seconds` (RFC 2177 asks for under 29 minutes), with a NOOP."""

    CHECK_SECONDS = 0.5

    def __init__(self, name: str, cfg: Imap, on_mail: Callable[[], None],
                 stop: threading.Event, max_backoff: float = 300.0) -> None:
        self.name, self.cfg, self.on_mail, self.stop = name, cfg, on_mail, stop
        self.max_backoff = max_backoff
        self.connections = 0

    def run(self) -> None:
        backoff = 0.0                     # the first reconnect after a lost connection is at once
        while not self.stop.is_set():
            try:
                with connect(self.cfg) as client:
                    client.select_folder(self.cfg.folder, readonly=True)
                    self.connections += 1
                    backoff = 0.0
                    self.on_mail()
                    self._idle(client)
            except (IMAPClientError, OSError) as exc:
                log.warning("%s: IDLE connection lost (%s); reconnecting in %.0f s", self.name, exc, backoff)
                self.stop.wait(backoff)
                backoff = min(max(backoff * 2, 1.0), self.max_backoff)

    def _idle(self, client: IMAPClient) -> None:
        while not self.stop.is_set():
            client.idle()
            renew_at = time.monotonic() + self.cfg.idle_refresh_seconds
            arrived = False
            while not self.stop.is_set() and time.monotonic() < renew_at and not arrived:
                responses = client.idle_check(timeout=self.CHECK_SECONDS)
                if goodbye := next((r for r in responses if r[:1] == (b"BYE",)), None):
                    raise IMAPClientAbortError(f"the server said BYE: {_text(goodbye[1:])}")
                if not responses and hung_up(client.socket()):
                    raise IMAPClientAbortError("the server closed the connection")
                arrived = any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)
            client.idle_done()
            if arrived:
                self.on_mail()
            client.noop()


def hung_up(sock: socket.socket) -> bool:
    """Whether the peer closed the connection: readable, and a peek at the TCP stream finds its end
    (peeked on a duplicate of the descriptor, which works under TLS too and consumes nothing)."""
    try:
        if not io_select.select([sock], [], [], 0)[0]:
            return False
        with socket.fromfd(sock.fileno(), socket.AF_INET, socket.SOCK_STREAM) as raw:
            return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _text(parts: tuple[object, ...]) -> str:
    return " ".join(p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in parts)
