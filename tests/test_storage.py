"""Storage and threading against both SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from freezegun import freeze_time
from sqlmodel import SQLModel, select

from mailagent.store.knowledge import is_search_index
from mailagent.pipeline import classify
from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.pipeline.threads import subject_key
from mailagent.store import db
from mailagent.store.models import Conversation, Message, MessageState, Outbound

from .conftest import make_settings
from .support.mails import mail


def _process_all(settings) -> None:
    with db.session(settings.database.url) as s:
        ids = s.exec(select(Message.id).where(Message.state == MessageState.STORED)).all()
    for message_id in ids:
        classify.process(settings, message_id)


def _messages(url: str) -> list[Message]:
    with db.session(url) as s:
        return list(s.exec(select(Message).order_by(Message.id)))


def _migrated(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Objects the migrations own: not the full-text index, nor the demo backend's tables, which
    live apart (their own metadata, created by the demo backend in a database tests share)."""
    table = name if type_ == "table" else parent_names.get("table_name")
    return not is_search_index(name, type_, parent_names) and not (table or "").startswith("demo_")


def test_migrations_match_the_models(any_db_url: str) -> None:
    with db.engine(any_db_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _migrated})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_raw_bytes_are_kept_exactly_and_duplicates_are_counted_not_stored(any_db_url: str) -> None:
    raw = mail(1) + b"\r\n\xff\xfe binary tail \x00"
    first = store_many(any_db_url, [Inbound(raw, "file")])
    again = store_many(any_db_url, [Inbound(raw, "pipe"), Inbound(raw.replace(b"binary", b"BINARY"), "file")])
    assert first[0] is not None and again == [None, None]   # same Message-ID: same message
    [row] = _messages(any_db_url)
    assert row.raw == raw and row.duplicates == 2 and row.message_id == "m1.alice@customer.example"


def test_without_message_id_the_content_hash_deduplicates(any_db_url: str) -> None:
    a, b = mail(1, message_id=None), mail(2, message_id=None)
    assert all(store_many(any_db_url, [Inbound(a, "file"), Inbound(b, "file")]))
    assert store_many(any_db_url, [Inbound(a, "file")]) == [None]
    assert [m.dedup_key.startswith("sha256:") for m in _messages(any_db_url)] == [True, True]


def test_a_thread_of_three_is_one_conversation(any_db_url: str) -> None:
    settings = make_settings(any_db_url)
    store_many(any_db_url, [
        Inbound(mail(1, subject="Login broken"), "file"),
        Inbound(mail(2, subject="Re: Login broken", in_reply_to="m1.alice@customer.example",
                     references=["m1.alice@customer.example"]), "file"),
        Inbound(mail(3, subject="AW: Re: Login broken", in_reply_to="m2.alice@customer.example",
                     references=["m1.alice@customer.example", "m2.alice@customer.example"]), "file"),
    ])
    _process_all(settings)
    assert {m.conversation_id for m in _messages(any_db_url)} == {1}


def test_a_reply_processed_before_its_parent_still_joins_one_conversation(any_db_url: str) -> None:
    settings = make_settings(any_db_url)
    ids = store_many(any_db_url, [
        Inbound(mail(1, subject="Export"), "file"),
        Inbound(mail(2, subject="Re: Export", in_reply_to="m1.alice@customer.example"), "file"),
    ])
    classify.process(settings, ids[1])   # the reply first
    classify.process(settings, ids[0])
    msgs = _messages(any_db_url)
    assert msgs[0].conversation_id == msgs[1].conversation_id is not None
    with db.session(any_db_url) as s:
        assert len(s.exec(select(Conversation)).all()) == 1


def test_concurrent_processing_of_one_thread_makes_one_conversation(any_db_url: str) -> None:
    settings = make_settings(any_db_url)
    chain = [f"m{i}.alice@customer.example" for i in range(1, 9)]
    ids = store_many(any_db_url, [
        Inbound(mail(i, subject="Sync", in_reply_to=chain[i - 2] if i > 1 else None,
                     references=chain[: i - 1]), "file") for i in range(1, 9)
    ])
    threads = [threading.Thread(target=classify.process, args=(settings, i)) for i in reversed(ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({m.conversation_id for m in _messages(any_db_url)}) == 1


def test_same_subject_from_two_customers_never_merges(any_db_url: str) -> None:
    settings = make_settings(any_db_url)
    store_many(any_db_url, [
        Inbound(mail(1, sender="alice@a.example", subject="Invoice"), "file"),
        Inbound(mail(2, sender="bob@b.example", subject="Invoice"), "file"),
        Inbound(mail(3, sender="alice@a.example", subject="Re: invoice"), "file"),
    ])
    _process_all(settings)
    alice1, bob, alice2 = _messages(any_db_url)
    assert alice1.conversation_id == alice2.conversation_id != bob.conversation_id


def test_subject_matching_only_within_the_window(any_db_url: str) -> None:
    settings = make_settings(any_db_url, ingest={"subject_window_days": 3})
    with freeze_time("2026-11-01 10:00:00"):
        store_many(any_db_url, [Inbound(mail(1, subject="Invoice", date="Sun, 01 Nov 2026 10:00:00 +0000"), "file")])
        _process_all(settings)
    with freeze_time("2026-11-03 10:00:00"):
        store_many(any_db_url, [Inbound(mail(2, subject="Invoice", date="Tue, 03 Nov 2026 10:00:00 +0000"), "file")])
        _process_all(settings)
    with freeze_time("2026-11-20 10:00:00"):
        store_many(any_db_url, [Inbound(mail(3, subject="Invoice", date="Fri, 20 Nov 2026 10:00:00 +0000"), "file")])
        _process_all(settings)
    first, second, late = _messages(any_db_url)
    assert first.conversation_id == second.conversation_id != late.conversation_id


def test_a_reply_to_our_own_reply_threads_by_our_message_id(any_db_url: str) -> None:
    from mailagent.pipeline import outbox

    settings = make_settings(any_db_url, smtp={"port": 25})
    store_many(any_db_url, [Inbound(mail(1, subject="Seats"), "file")])
    _process_all(settings)
    with db.session(any_db_url) as s:
        parent = s.exec(select(Message)).one()
        conversation = s.get(Conversation, parent.conversation_id)
        ours = outbox.queue_reply(s, settings, conversation.id, conversation.mailbox, outbox.Parent.of(parent),
                                  "You can add seats in Settings.", None)
        our_id = ours.message_id
    # the customer's client quotes only our id (no older references), with a new subject
    store_many(any_db_url, [Inbound(mail(2, subject="thanks!", in_reply_to=our_id), "file")])
    _process_all(settings)
    assert {m.conversation_id for m in _messages(any_db_url)} == {conversation.id}
    with db.session(any_db_url) as s:
        assert s.exec(select(Outbound)).one().conversation_id == conversation.id


def test_unparseable_mail_is_stored_with_its_error_and_threaded(any_db_url: str, monkeypatch) -> None:
    settings = make_settings(any_db_url)
    [message_id] = store_many(any_db_url, [Inbound(mail(1), "file")])

    def explode(raw: bytes):
        raise ValueError("boom in the parser")

    monkeypatch.setattr(classify, "parse_tree", explode)
    classify.process(settings, message_id)
    [row] = _messages(any_db_url)
    assert row.parse_error == "ValueError: boom in the parser"
    assert row.state == MessageState.PROCESSED and row.conversation_id is not None and row.raw == mail(1)


def test_processing_twice_changes_nothing(any_db_url: str) -> None:
    settings = make_settings(any_db_url)
    [message_id] = store_many(any_db_url, [Inbound(mail(1), "file")])
    assert classify.process(settings, message_id) is not None
    assert classify.process(settings, message_id) is None


def test_piped_mail_finds_its_mailbox_from_the_recipients(any_db_url: str) -> None:
    settings = make_settings(any_db_url)
    [new_id] = store_many(any_db_url, [Inbound(mail(1, to="Support <SUPPORT@example.com>"), "pipe")])
    classify.process(settings, new_id)
    assert _messages(any_db_url)[0].mailbox == "support"


def test_subject_key() -> None:
    assert subject_key("Re: AW: [#123] Fwd:  Login   Broken") == "login broken"
    assert subject_key("RE[2]: Invoice") == "invoice"
    assert subject_key("Reminder: invoice") == "reminder: invoice"
    assert subject_key("") == ""


def test_subject_window_zero_disables_subject_matching(any_db_url: str) -> None:
    settings = make_settings(any_db_url, ingest={"subject_window_days": 0})
    store_many(any_db_url, [Inbound(mail(1, subject="Invoice"), "file"), Inbound(mail(2, subject="Invoice"), "file")])
    _process_all(settings)
    a, b = _messages(any_db_url)
    assert a.conversation_id != b.conversation_id


def test_inspect_parses_once_and_reads_everything_from_that_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classify stage's pure part: one parse gives the envelope, the loop verdict and the
    mailbox the message was sent to; the body is never parsed a second time."""
    import mailagent.mail.parse as mail_parse

    calls: list[int] = []
    real = mail_parse._PARSER.parsebytes

    def counted(raw: bytes, headersonly: bool = False) -> object:
        calls.append(len(raw))
        return real(raw, headersonly=headersonly)

    monkeypatch.setattr(mail_parse._PARSER, "parsebytes", counted)
    raw = mail(3, to="Support <support@example.com>", subject="Invoice please")
    found = classify.inspect(raw, own_addresses=set(), mailboxes={"support@example.com": "support"})
    assert len(calls) == 1
    assert (found.from_addr, found.subject, found.kind, found.mailbox) == \
        ("alice@customer.example", "Invoice please", "normal", "support")
    assert found.parsed is not None and found.parse_error is None

    bounce = classify.inspect(b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n"
                              b"Return-Path: <>\r\n\r\nsorry", own_addresses=set(), mailboxes={})
    assert bounce.kind == "bounce"


def _open_and_read(url: str, barrier: Any, results: Any) -> None:
    from mailagent.store import plain

    barrier.wait()
    try:
        with plain.connect(url, write=False) as conn:
            plain.version(conn)
            results.put(conn.execute("PRAGMA journal_mode").fetchone()[0])
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_sqlite_database_at_once_all_get_in(tmp_path: Path) -> None:
    """MTA deliveries to a fresh install open the new database at once, and each switches it to
    WAL; SQLite refused some of them at once ("database is locked", no busy wait), and that
    delivery was deferred. Every one now gets in, and the database is in WAL mode."""
    ctx = multiprocessing.get_context("fork")
    outcomes: Counter[str] = Counter()
    for round_ in range(40):
        path = tmp_path / f"new{round_}.db"
        path.touch()                   # what the first process's connect leaves for the others
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_and_read, args=(f"sqlite:///{path}", barrier, results)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
        outcomes.update(results.get(timeout=5) for _ in procs)
    assert outcomes == {"wal": 160}
