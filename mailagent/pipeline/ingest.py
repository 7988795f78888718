"""Getting mail in: store raw bytes first (from IMAP, an MTA pipe or files), parse later.

Every path ends in `store`, which keeps the raw bytes once per Message-ID (or content hash). An IMAP poll commits each batch together with its cursor, so the
cursor never moves past a message that is not stored, and a crash mid-batch refetches the batch.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from imapclient import IMAPClient
from sqlalchemy import or_, update
from sqlmodel import Session, select

from mailagent.config import Settings
from mailagent.mail import imap
from mailagent.mail.headers import identity
from mailagent.store import db
from mailagent.store.models import MailboxCursor, Message, now

log = logging.getLogger(__name__)

Enqueue = Callable[[list[int]], None]


@dataclass(frozen=True)
class Inbound:
    """Raw bytes and where they came from."""

    raw: bytes
    source: str                       # imap | pipe | file
    mailbox: str | None = None
    uid: int | None = None
    uidvalidity: int | None = None


def _row(item: Inbound, received: datetime) -> dict[str, object]:
    """A new row: the raw bytes and the message's identity; the rest is read by `inbound`."""
    ident = identity(item.raw)
    return dict(
        dedup_key=ident.dedup_key, message_id=ident.message_id, sha256=ident.sha256, raw=item.raw,
        source=item.source, mailbox=item.mailbox, imap_uid=item.uid, imap_uidvalidity=item.uidvalidity,
        received_at=received, state="stored",
    )


def store(s: Session, items: list[Inbound]) -> list[int | None]:
    """Keep the messages, in one statement; for each, the new row's id, or None when it was
    already stored (then its `duplicates` count goes up)."""
    if not items:
        return []
    received = now()
    rows = [_row(item, received) for item in items]
    table = Message.__table__
    statement = (db.insert(s, table).on_conflict_do_nothing(index_elements=["dedup_key"])
                 .returning(table.c.id, table.c.dedup_key))
    inserted = dict((key, ident) for ident, key in s.connection().execute(statement, rows))
    ids: list[int | None] = []
    repeats: Counter[str] = Counter()
    for row in rows:
        key = str(row["dedup_key"])
        ids.append(inserted.pop(key, None))
        if ids[-1] is None:
            repeats[key] += 1
    for key, count in repeats.items():
        s.connection().execute(update(table).where(table.c.dedup_key == key)
                               .values(duplicates=table.c.duplicates + count))
        log.info("duplicate of a stored message ignored: %s", key)
    return ids


def store_many(url: str, items: list[Inbound]) -> list[int | None]:
    """Store several messages in one transaction (files, the MTA pipe)."""
    with db.session(url) as s:
        return store(s, items)


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
    with db.session(url) as s:
        s.execute(db.insert(s, MailboxCursor).values(mailbox=name, folder=folder, last_uid=0, rerun=False)
                  .on_conflict_do_nothing())
        t = now()
        taken = s.execute(
            update(MailboxCursor).where(MailboxCursor.mailbox == name)
            .where(or_(MailboxCursor.locked_until.is_(None), MailboxCursor.locked_until < t))
            .values(locked_by=owner, locked_until=t + timedelta(seconds=lease), rerun=False)
        ).rowcount
        if not taken:
            s.execute(update(MailboxCursor).where(MailboxCursor.mailbox == name).values(rerun=True))
        return bool(taken)


def _release(url: str, name: str, owner: str, error: str | None) -> None:
    with db.session(url) as s:
        s.execute(
            update(MailboxCursor).where(MailboxCursor.mailbox == name, MailboxCursor.locked_by == owner)
            .values(locked_by=None, locked_until=None, rerun=False, last_poll_at=now(), last_error=error)
        )


def _rerun_requested(url: str, name: str, owner: str) -> bool:
    """Whether another poll asked for a pass while this one ran (the request is consumed)."""
    with db.session(url) as s:
        return bool(s.execute(
            update(MailboxCursor)
            .where(MailboxCursor.mailbox == name, MailboxCursor.locked_by == owner, MailboxCursor.rerun)
            .values(rerun=False)
        ).rowcount)


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
                with db.session(self.url) as s:
                    held = s.execute(update(MailboxCursor).where(MailboxCursor.mailbox == self.name,
                                                                  MailboxCursor.locked_by == self.owner)
                                     .values(locked_until=now() + timedelta(seconds=self.lease))).rowcount
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
    with db.session(url) as s:
        cursor = s.exec(select(MailboxCursor).where(MailboxCursor.mailbox == name)).one()
        if cursor.uidvalidity != uidvalidity:
            if cursor.uidvalidity is not None:
                log.warning("%s: UIDVALIDITY changed %s -> %s: resyncing the whole folder "
                            "(stored messages are recognised and not stored twice)",
                            name, cursor.uidvalidity, uidvalidity)
            cursor.uidvalidity, cursor.last_uid = uidvalidity, 0
        last_uid = cursor.last_uid
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
    both let the other side run. Batches commit strictly in order; the IMAP thread marks or moves
    only messages whose batch has committed."""

    def __init__(self, settings: Settings, name: str, owner: str, uidvalidity: int, enqueue: Enqueue,
                 result: PollResult) -> None:
        self.settings, self.name, self.owner, self.uidvalidity = settings, name, owner, uidvalidity
        self.enqueue, self.result = enqueue, result
        self.pending: queue.Queue[list[tuple[int, bytes]] | None] = queue.Queue(maxsize=2)
        self.done: queue.Queue[list[int]] = queue.Queue()
        self.error: BaseException | None = None
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

    def _run(self) -> None:
        while (batch := self.pending.get()) is not None:
            if self.error is not None:
                continue                                   # drain: the fetch loop is stopping
            try:
                self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the polling thread
                self.error = exc

    def _commit(self, batch: list[tuple[int, bytes]]) -> None:
        lease = self.settings.ingest.lease_seconds
        with db.session(self.settings.database.url) as s:
            new_ids = store(s, [Inbound(raw, "imap", self.name, uid, self.uidvalidity) for uid, raw in batch])
            moved = s.execute(
                update(MailboxCursor)
                .where(MailboxCursor.mailbox == self.name, MailboxCursor.locked_by == self.owner)
                .values(last_uid=batch[-1][0], uidvalidity=self.uidvalidity,
                        locked_until=now() + timedelta(seconds=lease))
            ).rowcount
            if not moved:
                raise LeaseLost(f"{self.name}: the poll lease expired; another poll continues")
        stored = [i for i in new_ids if i is not None]
        self.result.fetched += len(batch)
        self.result.stored += stored
        if stored:
            self.enqueue(stored)
        self.done.put([uid for uid, _ in batch])
