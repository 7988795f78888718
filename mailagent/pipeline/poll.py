"""The IMAP poll: fetch what is new in a mailbox folder and store it batch by batch.

Each batch commits together with the folder's cursor, so the cursor never moves past a message
that is not stored, and a crash mid-batch refetches the batch. Two polls of one mailbox never
overlap (a lease in the database).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mailagent.config import Settings
from mailagent.mail import imap
from mailagent.pipeline.ingest import Inbound, store
from mailagent.store import cursors, plain

if TYPE_CHECKING:
    from imapclient import IMAPClient

log = logging.getLogger(__name__)

Enqueue = Callable[[list[int]], None]


@dataclass
class PollResult:
    fetched: int = 0
    stored: list[int] = field(default_factory=list)
    busy: bool = False                 # another poll of this mailbox was running: it will rerun

    @property
    def duplicates(self) -> int:
        return self.fetched - len(self.stored)


def _owner() -> str:
    """Who holds a lease: readable in the database, unique per poll."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _acquire(url: str, name: str, folder: str, owner: str, lease: float) -> bool:
    """Take the mailbox's lease, or leave a note for its holder to poll once more."""
    with plain.connect(url, write=True) as conn:
        return cursors.acquire(conn, name, folder, owner, datetime.now(UTC), lease)


def _release(url: str, name: str, owner: str, error: str | None) -> None:
    with plain.connect(url, write=True) as conn:
        cursors.release(conn, name, owner, datetime.now(UTC), error)


def _rerun_requested(url: str, name: str, owner: str) -> bool:
    """Whether another poll asked for a pass while this one ran (the request is consumed)."""
    with plain.connect(url, write=True) as conn:
        return cursors.take_rerun(conn, name, owner)


class LeaseLost(RuntimeError):
    """This poll held the mailbox too long and another took over; it stops without writing."""


def poll(settings: Settings, name: str, enqueue: Enqueue) -> PollResult:
    """Fetch what is new in one mailbox folder, store it batch by batch, and enqueue each new row.

    Two polls of one mailbox never overlap (a lease in the database); a poll that finds the lease
    taken asks the holder to run once more, so mail announced by IDLE is never left waiting."""
    mailbox = settings.mailbox(name)
    if mailbox.imap is None:
        raise ValueError(f"mailbox {name!r} has no [mailboxes.{name}.imap] section")
    url, owner, lease = settings.database.url, _owner(), settings.ingest.lease_seconds
    if not _acquire(url, name, mailbox.imap.folder, owner, lease):
        return PollResult(busy=True)
    result = PollResult()
    error: str | None = None
    renewing = _Renewer(url, name, owner, lease)
    try:
        with imap.connect(mailbox.imap) as client:
            _poll_once(settings, name, client, owner, enqueue, result)
            while _rerun_requested(url, name, owner):
                _poll_once(settings, name, client, owner, enqueue, result)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        renewing.stop()
        _release(url, name, owner, error)
    return result


class _Renewer:
    """Renews the poll's mailbox lease every third of `lease` seconds while the poll lives, so the
    lease can be short: a poll killed mid-batch pauses the mailbox for at most `lease` seconds."""

    def __init__(self, url: str, name: str, owner: str, lease: float) -> None:
        self.url, self.name, self.owner, self.lease = url, name, owner, lease
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lease:{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.lease / 3):
            try:
                with plain.connect(self.url, write=True) as conn:
                    held = cursors.renew(conn, self.name, self.owner, datetime.now(UTC) + timedelta(seconds=self.lease))
            except Exception:  # noqa: BLE001 - the next renewal tries again; the writer checks the lease
                log.warning("%s: renewing the poll lease failed", self.name, exc_info=True)
                continue
            if not held:
                return                          # taken over: the writer stops at its next commit

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def _poll_once(settings: Settings, name: str, client: IMAPClient, owner: str, enqueue: Enqueue,
               result: PollResult) -> None:
    cfg = settings.mailbox(name).imap
    assert cfg is not None
    url = settings.database.url
    uidvalidity = imap.select(client, cfg)
    with plain.connect(url, write=True) as conn:
        last_uid, before = cursors.position(conn, name, uidvalidity)
    if before is not None and before != uidvalidity:
        log.warning("%s: UIDVALIDITY changed %s -> %s: resyncing the whole folder "
                    "(stored messages are recognised and not stored twice)", name, before, uidvalidity)
    writer = _Writer(settings, name, owner, uidvalidity, enqueue, result)
    try:
        for batch in imap.fetch_new(client, last_uid, settings.ingest.batch_size):
            if not writer.put(batch):
                break
            imap.after_ingest(client, cfg, writer.committed())
    finally:
        writer.close()
    imap.after_ingest(client, cfg, writer.committed())
    writer.raise_error()


class _Writer:
    """Commits fetched batches (messages and cursor in one transaction) in a thread of its own,
    so that storing batch N overlaps fetching batch N+1: the IMAP round trips and SQLite's C code
    both let the other side run. Batches that arrive while a commit runs are committed together
    (a group commit, as in `worker.lmtp`), so a writer that falls behind catches up instead of
    blocking the fetch. Batches commit strictly in order; the IMAP thread marks or moves only
    messages whose batch has committed."""

    BACKLOG = 8               # batches fetched ahead of the writer (at most 8 x batch_size messages held)

    def __init__(self, settings: Settings, name: str, owner: str, uidvalidity: int, enqueue: Enqueue,
                 result: PollResult) -> None:
        self.settings, self.name, self.owner, self.uidvalidity = settings, name, owner, uidvalidity
        self.enqueue, self.result = enqueue, result
        self.pending: queue.Queue[list[tuple[int, bytes]] | None] = queue.Queue(maxsize=self.BACKLOG)
        self.done: queue.Queue[list[int]] = queue.Queue()
        self.error: BaseException | None = None
        self.opened: plain.Opened | None = None         # one connection for every batch of this poll
        # Moved messages leave the folder the cursor reads: their commit must survive a power loss,
        # or they would never be fetched again. Flagged ones stay and are refetched.
        imap_cfg = settings.mailbox(name).imap
        self.durable = imap_cfg is not None and imap_cfg.after_ingest == "move"
        self.thread = threading.Thread(target=self._run, name=f"store:{name}", daemon=True)
        self.thread.start()

    def put(self, batch: list[tuple[int, bytes]]) -> bool:
        """Hand a batch over; False once the writer failed (stop fetching)."""
        if self.error is None:
            self.pending.put(batch)
        return self.error is None

    def committed(self) -> list[int]:
        uids: list[int] = []
        while not self.done.empty():
            uids += self.done.get_nowait()
        return uids

    def close(self) -> None:
        self.pending.put(None)
        self.thread.join()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _take(self) -> tuple[list[tuple[int, bytes]], bool]:
        """The next batch with every batch queued behind it, as one; and whether the fetch ended."""
        items = [self.pending.get()]
        while items[-1] is not None and not self.pending.empty():
            items.append(self.pending.get_nowait())
        return [message for item in items if item for message in item], items[-1] is None

    def _run(self) -> None:
        closed = False
        while not closed:
            batch, closed = self._take()
            if self.error is not None or not batch:
                continue                                   # drain: the fetch loop is stopping
            try:
                self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the polling thread
                self.error = exc
        if self.opened is not None:
            self.opened.close()

    def _commit(self, batch: list[tuple[int, bytes]]) -> None:
        until = datetime.now(UTC) + timedelta(seconds=self.settings.ingest.lease_seconds)
        self.opened = self.opened or plain.Opened(self.settings.database.url)
        with self.opened.transaction(write=True, durable=self.durable) as conn:
            new_ids = store(conn, [Inbound(raw, "imap", self.name, uid, self.uidvalidity) for uid, raw in batch])
            if not cursors.advance(conn, self.name, self.owner, batch[-1][0], self.uidvalidity, until):
                raise LeaseLost(f"{self.name}: the poll lease expired; another poll continues")
        stored = [i for i in new_ids if i is not None]
        self.result.fetched += len(batch)
        self.result.stored += stored
        if stored:
            self.enqueue(stored)
        self.done.put([uid for uid, _ in batch])
