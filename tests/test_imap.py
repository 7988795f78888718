"""IMAP ingestion against a real Dovecot: nothing lost, nothing doubled, IDLE is prompt."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from imapclient.exceptions import IMAPClientError
from sqlmodel import select

from mailagent.mail import imap
from mailagent.mail.imap import IdleWatcher
from mailagent.pipeline import poll
from mailagent.store import db
from mailagent.store.models import MailboxCursor, Message, now

from .support.dovecot import Dovecot, free_port
from .support.mails import mail
from .support.proxy import Proxy


class Collect:
    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, ids: list[int]) -> None:
        self.ids += ids


def _stored(url: str) -> list[Message]:
    with db.session(url) as s:
        return list(s.exec(select(Message).order_by(Message.id)))


def _cursor(url: str) -> MailboxCursor:
    with db.session(url) as s:
        return s.get(MailboxCursor, "support")


def test_new_mail_is_stored_once_across_many_polls(dovecot: Dovecot, imap_user: str, any_db_url: str,
                                                    settings_for) -> None:
    settings = settings_for(any_db_url, imap_user, )
    dovecot.append(imap_user, "INBOX", *(mail(i) for i in range(5)))
    enqueued = Collect()
    first = poll.poll(settings, "support", enqueued)
    assert (first.fetched, len(first.stored)) == (5, 5)
    assert poll.poll(settings, "support", enqueued).fetched == 0
    dovecot.append(imap_user, "INBOX", *(mail(i) for i in range(5, 8)))
    assert len(poll.poll(settings, "support", enqueued).stored) == 3
    rows = _stored(any_db_url)
    assert [r.message_id for r in rows] == [f"m{i}.alice@customer.example" for i in range(8)]
    assert enqueued.ids == [r.id for r in rows]
    assert [r.imap_uid for r in rows] == list(range(1, 9))
    assert _cursor(any_db_url).last_uid == 8 and _cursor(any_db_url).locked_by is None


def test_a_fetch_formats_no_debug_messages_unless_they_are_logged(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                                                  settings_for, caplog) -> None:
    """imapclient asks imaplib for level-5 debug messages: the repr of every response, whole
    messages included, formatted and then dropped (40% of a fetch's CPU)."""
    cfg = settings_for(sqlite_url, imap_user).mailbox("support").imap
    dovecot.append(imap_user, "INBOX", mail(1))
    formatted: list[str] = []
    with imap.connect(cfg) as client:
        client._imap._mesg = formatted.append
        imap.select(client, cfg)
        assert [uid for uid, _ in next(imap.fetch_new(client, 0, 10))] == [1]
    assert formatted == []
    caplog.set_level(logging.DEBUG, logger="imapclient.imaplib")     # debugging IMAP still works
    with imap.connect(cfg) as client:
        imap.select(client, cfg)
        next(imap.fetch_new(client, 0, 10))
    assert any("m1.alice@customer.example" in record.getMessage() for record in caplog.records)


def test_fetch_leaves_messages_unread(dovecot: Dovecot, imap_user: str, sqlite_url: str, settings_for) -> None:
    settings = settings_for(sqlite_url, imap_user)
    dovecot.append(imap_user, "INBOX", mail(1))
    poll.poll(settings, "support", Collect())
    with dovecot.client(imap_user) as c:
        c.select_folder("INBOX")
        assert b"\\Seen" not in c.get_flags([1])[1]


def test_after_ingest_flag_marks_what_was_taken(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                                settings_for) -> None:
    settings = settings_for(sqlite_url, imap_user, after_ingest="flag")
    dovecot.append(imap_user, "INBOX", mail(1), mail(2))
    poll.poll(settings, "support", Collect())
    with dovecot.client(imap_user) as c:
        c.select_folder("INBOX")
        assert all(b"$MailagentIngested" in flags for flags in c.get_flags([1, 2]).values())


def test_after_ingest_move_empties_the_folder(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                              settings_for) -> None:
    settings = settings_for(sqlite_url, imap_user, after_ingest="move", move_to="Processed")
    dovecot.append(imap_user, "Processed")
    dovecot.append(imap_user, "INBOX", mail(1), mail(2), mail(3))
    assert len(poll.poll(settings, "support", Collect()).stored) == 3
    with dovecot.client(imap_user) as c:
        assert c.select_folder("INBOX")[b"EXISTS"] == 0
        assert c.select_folder("Processed")[b"EXISTS"] == 3


def test_after_ingest_move_to_a_missing_folder_creates_it(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                                          settings_for) -> None:
    """The MOVE failed with [TRYCREATE] and the message stayed in INBOX."""
    settings = settings_for(sqlite_url, imap_user, after_ingest="move", move_to="Handled")
    dovecot.append(imap_user, "INBOX", mail(1), mail(2))
    assert len(poll.poll(settings, "support", Collect()).stored) == 2
    with dovecot.client(imap_user) as c:
        assert c.select_folder("INBOX")[b"EXISTS"] == 0
        assert c.select_folder("Handled")[b"EXISTS"] == 2
    assert _cursor(sqlite_url).last_error is None


def test_after_ingest_move_to_a_folder_the_server_refuses_says_so(dovecot: Dovecot, imap_user: str,
                                                                  sqlite_url: str, settings_for) -> None:
    settings = settings_for(sqlite_url, imap_user, after_ingest="move", move_to="Archive/2026")  # "." separates
    dovecot.append(imap_user, "INBOX", mail(1))
    with pytest.raises(IMAPClientError, match="Archive/2026"):
        poll.poll(settings, "support", Collect())
    assert len(_stored(sqlite_url)) == 1                  # stored all the same: nothing is lost
    assert "Archive/2026" in _cursor(sqlite_url).last_error


def test_connection_dropped_mid_fetch_loses_and_doubles_nothing(dovecot: Dovecot, imap_user: str,
                                                                sqlite_url: str, settings_for) -> None:
    proxy = Proxy(dovecot.port)
    settings = settings_for(sqlite_url, imap_user, port=proxy.port)
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"batch_size": 4})})
    dovecot.append(imap_user, "INBOX", *(mail(i, body="x" * 3000 + f" {i}") for i in range(20)))
    proxy.cut_after = 30_000               # about two batches in, mid-FETCH
    with pytest.raises((IMAPClientError, OSError)):
        poll.poll(settings, "support", Collect())
    partial = _stored(sqlite_url)
    assert 0 < len(partial) < 20
    assert _cursor(sqlite_url).last_uid == partial[-1].imap_uid      # cursor never ahead of storage
    assert "FETCH" in (_cursor(sqlite_url).last_error or "") and _cursor(sqlite_url).locked_by is None
    proxy.cut_after = None
    poll.poll(settings, "support", Collect())
    rows = _stored(sqlite_url)
    assert sorted(r.message_id for r in rows) == sorted(f"m{i}.alice@customer.example" for i in range(20))
    assert sum(r.duplicates for r in rows) == 0
    proxy.close()


def test_uidvalidity_change_resyncs_without_duplicates(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                                       settings_for) -> None:
    settings = settings_for(sqlite_url, imap_user, folder="Support")
    dovecot.append(imap_user, "Support", mail(1), mail(2), mail(3))
    poll.poll(settings, "support", Collect())
    before = _cursor(sqlite_url).uidvalidity
    time.sleep(1.1)                         # Dovecot derives UIDVALIDITY from the clock
    dovecot.recreate(imap_user, "Support")
    dovecot.append(imap_user, "Support", mail(1), mail(2), mail(3), mail(4))
    result = poll.poll(settings, "support", Collect())
    assert (result.fetched, len(result.stored)) == (4, 1)
    assert _cursor(sqlite_url).uidvalidity != before
    rows = _stored(sqlite_url)
    assert len(rows) == 4 and [r.duplicates for r in rows] == [1, 1, 1, 0]


def test_same_message_delivered_twice_is_stored_once(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                                     settings_for) -> None:
    settings = settings_for(sqlite_url, imap_user)
    dovecot.append(imap_user, "INBOX", mail(1), mail(1))
    result = poll.poll(settings, "support", Collect())
    assert (result.fetched, len(result.stored), result.duplicates) == (2, 1, 1)
    assert _stored(sqlite_url)[0].duplicates == 1


def test_a_poll_while_another_runs_waits_its_turn(dovecot: Dovecot, imap_user: str, any_db_url: str,
                                                  settings_for) -> None:
    settings = settings_for(any_db_url, imap_user)
    dovecot.append(imap_user, "INBOX", mail(1))
    assert poll._acquire(any_db_url, "support", "INBOX", "someone-else", 60)
    second = poll.poll(settings, "support", Collect())
    assert second.busy and _stored(any_db_url) == []
    assert _cursor(any_db_url).rerun                      # the holder is asked to poll again
    assert poll._rerun_requested(any_db_url, "support", "someone-else")
    assert not poll._rerun_requested(any_db_url, "support", "someone-else")


def test_an_expired_lease_is_taken_over(dovecot: Dovecot, imap_user: str, sqlite_url: str, settings_for) -> None:
    settings = settings_for(sqlite_url, imap_user)
    dovecot.append(imap_user, "INBOX", mail(1))
    with freeze_time(now() - timedelta(seconds=settings.ingest.lease_seconds + 1)):
        assert poll._acquire(sqlite_url, "support", "INBOX", "crashed-worker", settings.ingest.lease_seconds)
    assert len(poll.poll(settings, "support", Collect()).stored) == 1


def test_a_long_poll_renews_its_lease_and_a_killed_one_pauses_the_mailbox_briefly(
        dovecot: Dovecot, imap_user: str, sqlite_url: str, settings_for, monkeypatch) -> None:
    base = settings_for(sqlite_url, imap_user)
    settings = base.model_copy(update={"ingest": base.ingest.model_copy(update={"lease_seconds": 1, "batch_size": 1})})
    dovecot.append(imap_user, "INBOX", mail(1), mail(2))
    from mailagent.mail import imap

    real, slow = imap.after_ingest, threading.Event()

    def after_ingest(client, cfg, uids):      # the fetch loop busy for three lease periods, no transaction open
        if uids and not slow.is_set():
            slow.set()
            time.sleep(3)
        return real(client, cfg, uids)

    monkeypatch.setattr(imap, "after_ingest", after_ingest)
    outcome: list[object] = []
    poller = threading.Thread(target=lambda: outcome.append(poll.poll(settings, "support", Collect())))
    poller.start()
    assert slow.wait(30)
    time.sleep(1.5)                            # past the lease: still held, because its holder renews it
    assert not poll._acquire(sqlite_url, "support", "INBOX", "another-poller", 1)
    poller.join(30)
    [result] = outcome
    assert len(result.stored) == 2 and _cursor(sqlite_url).locked_by is None
    # a poll that died holding the lease (no renewals) blocks the mailbox for one lease period only
    assert poll._acquire(sqlite_url, "support", "INBOX", "killed-poller", 1)
    assert poll.poll(settings, "support", Collect()).busy
    time.sleep(1.1)
    assert not poll.poll(settings, "support", Collect()).busy


def test_a_poll_that_lost_its_lease_writes_nothing(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                                   settings_for, monkeypatch) -> None:
    settings = settings_for(sqlite_url, imap_user)
    dovecot.append(imap_user, "INBOX", mail(1), mail(2))
    real = poll.store

    def store_then_lose_lease(conn, items):    # as if another poller took over mid-batch
        conn.execute("UPDATE mailbox_cursor SET locked_by = 'another-poller'")
        return real(conn, items)

    monkeypatch.setattr(poll, "store", store_then_lose_lease)
    with pytest.raises(poll.LeaseLost):
        poll.poll(settings, "support", Collect())
    assert _stored(sqlite_url) == [] and _cursor(sqlite_url).last_uid == 0


def test_batches_fetched_during_a_slow_commit_are_committed_together(dovecot: Dovecot, imap_user: str,
                                                                    sqlite_url: str, settings_for,
                                                                    monkeypatch) -> None:
    """A writer that falls behind catches up with one commit for what queued meanwhile, in order,
    cursor included, and the fetch never waits for it."""
    settings = settings_for(sqlite_url, imap_user)
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"batch_size": 2})})
    dovecot.append(imap_user, "INBOX", *(mail(i) for i in range(10)))
    first_taken, fetched_all, commits = threading.Event(), threading.Event(), []
    real_fetch, real_store = poll.imap.fetch_new, poll.store

    def fetch_new(*args):
        batches = real_fetch(*args)
        yield next(batches)
        assert first_taken.wait(30)              # the writer took the first batch alone (on a busy
        yield from batches                       # machine the fetch could otherwise queue them all)
        fetched_all.set()

    def slow_first_store(conn, items):
        if not commits:
            first_taken.set()
            assert fetched_all.wait(30)          # every other batch is fetched while this one commits
        commits.append([item.uid for item in items])
        return real_store(conn, items)

    monkeypatch.setattr(poll.imap, "fetch_new", fetch_new)
    monkeypatch.setattr(poll, "store", slow_first_store)
    enqueued = Collect()
    result = poll.poll(settings, "support", enqueued)
    uids = [r.imap_uid for r in _stored(sqlite_url)]
    assert len(commits) == 2 and commits[0] == uids[:2] and commits[1] == uids[2:]
    assert len(result.stored) == 10 and _cursor(sqlite_url).last_uid == uids[-1]
    assert sorted(enqueued.ids) == sorted(result.stored)


@pytest.mark.parametrize("after_ingest, synchronous", [("flag", 1), ("move", 2)])
def test_moved_messages_are_committed_to_disk_before_they_leave_the_folder(
        dovecot: Dovecot, imap_user: str, sqlite_url: str, settings_for, monkeypatch, after_ingest: str,
        synchronous: int) -> None:
    """SQLite's NORMAL survives a crash of the process, FULL one of the machine: a message moved out
    of the folder is never fetched again, so its commit must be on disk (flagged ones are refetched)."""
    settings = settings_for(sqlite_url, imap_user)
    imap_cfg = settings.mailbox("support").imap.model_copy(update={"after_ingest": after_ingest,
                                                                   "move_to": "Taken"})
    support = settings.mailboxes["support"].model_copy(update={"imap": imap_cfg})
    settings = settings.model_copy(update={"mailboxes": {"support": support}})
    dovecot.append(imap_user, "INBOX", mail(1))
    seen, real = [], poll.store

    def store_noting_durability(conn, items):
        seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        return real(conn, items)

    monkeypatch.setattr(poll, "store", store_noting_durability)
    poll.poll(settings, "support", Collect())
    assert seen == [synchronous] and len(_stored(sqlite_url)) == 1


def _watch_polling(settings, url: str) -> tuple[IdleWatcher, threading.Event, threading.Thread]:
    """A watcher whose `on_mail` really polls the mailbox into the database."""
    stop = threading.Event()
    watcher = IdleWatcher("support", settings.mailbox("support").imap,
                          lambda: poll.poll(settings, "support", Collect()), stop, max_backoff=1)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return watcher, stop, thread


@pytest.mark.parametrize("how", ["doveadm kick", "connection dropped"])
def test_idle_notices_a_server_side_disconnect_and_picks_up_new_mail(sqlite_url: str, settings_for,
                                                                    how: str) -> None:
    """imapclient's idle_check swallows EOF and BYE: new mail waited for the re-IDLE (60 s here).
    Now the watcher sees the BYE (a kick, as at a server shutdown) or the hang-up without one (a
    proxy cuts the connection), reconnects and resyncs. Its own Dovecot, so the kick hits only it."""
    root = Path(tempfile.mkdtemp(prefix="mailagent-dovecot-"))     # not pytest's 0700 tmp (see conftest)
    root.chmod(0o755)
    server = Dovecot(root, free_port(), users=1).start()
    try:
        user = server.user(0)
        server.append(user, "INBOX", mail(1))
        proxy = Proxy(server.port)
        settings = settings_for(sqlite_url, user, idle=True, port=proxy.port, idle_refresh_seconds=60)
        watcher, stop, thread = _watch_polling(settings, sqlite_url)
        assert _wait_for(lambda: len(_stored(sqlite_url)) == 1, 10)
        started = time.monotonic()
        if how == "doveadm kick":
            server.kick(user)
        else:
            proxy.drop_all()
        server.append(user, "INBOX", mail(2))
        assert _wait_for(lambda: len(_stored(sqlite_url)) == 2, 30)       # well before the 60 s re-IDLE
        latency = time.monotonic() - started
        assert watcher.connections == 2
        print(f"\nIDLE after {how}: new mail stored {latency:.2f} s after the disconnect")
        stop.set()
        thread.join(5)
        proxy.close()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _watch(settings, calls: list[float]) -> tuple[IdleWatcher, threading.Event, threading.Thread]:
    stop = threading.Event()
    watcher = IdleWatcher("support", settings.mailbox("support").imap, lambda: calls.append(time.monotonic()), stop,
                          max_backoff=1)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return watcher, stop, thread


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_idle_announces_new_mail_within_a_second(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                                 settings_for) -> None:
    settings = settings_for(sqlite_url, imap_user, idle=True)
    dovecot.append(imap_user, "INBOX")
    calls: list[float] = []
    _, stop, thread = _watch(settings, calls)
    assert _wait_for(lambda: len(calls) == 1, 5)          # the resync after connecting
    time.sleep(0.3)
    appended = time.monotonic()
    dovecot.append(imap_user, "INBOX", mail(1))
    assert _wait_for(lambda: len(calls) == 2, 1.0)
    assert calls[1] - appended < 1.0
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_idle_reconnects_and_resyncs_after_a_drop(dovecot: Dovecot, imap_user: str, sqlite_url: str,
                                                  settings_for) -> None:
    proxy = Proxy(dovecot.port)
    settings = settings_for(sqlite_url, imap_user, idle=True, port=proxy.port, idle_refresh_seconds=0.5)
    calls: list[float] = []
    watcher, stop, thread = _watch(settings, calls)
    assert _wait_for(lambda: watcher.connections == 1, 5)
    proxy.drop_all()
    assert _wait_for(lambda: watcher.connections == 2, 5)
    assert len(calls) >= 2                                 # a resync poll after the reconnect
    stop.set()
    thread.join(5)
    proxy.close()
