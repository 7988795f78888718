"""Getting mail in: store raw bytes first (from IMAP, an MTA pipe, LMTP or files), parse later.

Every path ends in `store`, which keeps the raw bytes once per Message-ID (or content hash), in
plain SQL (`store.plain`): an MTA-piped `ingest` is a whole process per message, and importing
the ORM would cost it more than storing does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from mailagent.mail.headers import identity
from mailagent.store import plain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    """Raw bytes and where they came from."""

    raw: bytes
    source: str                       # imap | pipe | file | lmtp
    mailbox: str | None = None
    uid: int | None = None
    uidvalidity: int | None = None


def _row(item: Inbound, received: datetime) -> dict[str, object]:
    """A new row: the raw bytes and the message's identity; the rest is read by `inbound`."""
    ident = identity(item.raw)
    return {
        "dedup_key": ident.dedup_key, "message_id": ident.message_id, "sha256": ident.sha256, "raw": item.raw,
        "source": item.source, "mailbox": item.mailbox, "imap_uid": item.uid, "imap_uidvalidity": item.uidvalidity,
        "received_at": received, "state": "stored",
    }


def store(conn: plain.Conn, items: list[Inbound]) -> list[int | None]:
    """Keep the messages in the caller's transaction; for each, the new row's id, or None when it
    was already stored (then its `duplicates` count goes up)."""
    received = datetime.now(UTC)
    rows = [_row(item, received) for item in items]
    ids = plain.insert_messages(conn, rows)
    for row, ident in zip(rows, ids, strict=True):
        if ident is None:
            log.info("duplicate of a stored message ignored: %s", row["dedup_key"])
    return ids


def store_many(url: str, items: list[Inbound]) -> list[int | None]:
    """Store several messages in one transaction, on disk when it returns (files, the MTA pipe,
    LMTP: the sender forgets a message once told it is stored)."""
    with plain.connect(url, write=True, durable=True) as conn:
        return store(conn, items)
