"""The IMAP poll's rows in `mailbox_cursor`: how far a folder was read and who reads it now (a
lease). Plain SQL (`store.plain`): a poll then needs no ORM, so a process that polls starts fast
and its first batch pays for no mapper set-up."""

from __future__ import annotations

from datetime import datetime, timedelta

from mailagent.store.plain import Conn


def acquire(conn: Conn, name: str, folder: str, owner: str, at: datetime, lease: float) -> bool:
    """Take the mailbox's lease if it is free or expired; else ask its holder to poll once more."""
    conn.execute("INSERT INTO mailbox_cursor (mailbox, folder, last_uid, rerun) VALUES (?, ?, 0, ?) "
                 "ON CONFLICT (mailbox) DO NOTHING", [name, folder, False])
    taken = conn.execute("UPDATE mailbox_cursor SET locked_by = ?, locked_until = ?, rerun = ? "
                         "WHERE mailbox = ? AND (locked_until IS NULL OR locked_until < ?)",
                         [owner, conn.stamp(at + timedelta(seconds=lease)), False, name, conn.stamp(at)]).rowcount
    if not taken:
        conn.execute("UPDATE mailbox_cursor SET rerun = ? WHERE mailbox = ?", [True, name])
    return bool(taken)


def release(conn: Conn, name: str, owner: str, at: datetime, error: str | None) -> None:
    conn.execute("UPDATE mailbox_cursor SET locked_by = NULL, locked_until = NULL, rerun = ?, last_poll_at = ?, "
                 "last_error = ? WHERE mailbox = ? AND locked_by = ?", [False, conn.stamp(at), error, name, owner])


def take_rerun(conn: Conn, name: str, owner: str) -> bool:
    """Whether another poll asked for a pass while this one held the lease (the request is consumed)."""
    return bool(conn.execute("UPDATE mailbox_cursor SET rerun = ? WHERE mailbox = ? AND locked_by = ? AND rerun = ?",
                             [False, name, owner, True]).rowcount)


def position(conn: Conn, name: str, uidvalidity: int) -> tuple[int, int | None]:
    """The last UID read under this UIDVALIDITY (0 after a change: the folder is read again), and
    the UIDVALIDITY recorded before."""
    before, last_uid = conn.execute("SELECT uidvalidity, last_uid FROM mailbox_cursor WHERE mailbox = ?",
                                    [name]).fetchone()
    if before != uidvalidity:
        conn.execute("UPDATE mailbox_cursor SET uidvalidity = ?, last_uid = 0 WHERE mailbox = ?", [uidvalidity, name])
        return 0, before
    return last_uid, before


def advance(conn: Conn, name: str, owner: str, last_uid: int, uidvalidity: int, until: datetime) -> bool:
    """Move the cursor with a stored batch and renew the lease; False if the lease was lost."""
    return bool(conn.execute("UPDATE mailbox_cursor SET last_uid = ?, uidvalidity = ?, locked_until = ? "
                             "WHERE mailbox = ? AND locked_by = ?",
                             [last_uid, uidvalidity, conn.stamp(until), name, owner]).rowcount)


def renew(conn: Conn, name: str, owner: str, until: datetime) -> bool:
    """Extend the holder's lease; False if another poll took the mailbox over."""
    return bool(conn.execute("UPDATE mailbox_cursor SET locked_until = ? WHERE mailbox = ? AND locked_by = ?",
                             [conn.stamp(until), name, owner]).rowcount)
