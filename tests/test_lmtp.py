"""`mailagent lmtp`: a real listener process, a real LMTP client (smtplib), a real database."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailagent.store import db, listings

from .support.lmtp import Listener, deliver, write_config
from .support.mails import mail


@pytest.fixture
def listener(tmp_path: Path, sqlite_url: str) -> Iterator[Listener]:
    running = Listener(write_config(tmp_path, sqlite_url)).start()
    yield running
    running.stop()


def _stored(url: str) -> list[tuple[str | None, str]]:
    return [(m.mailbox, m.source) for m in listings.messages(url, limit=1000)]


def test_each_recipient_gets_its_own_reply_and_the_mailbox_is_the_recipients(tmp_path: Path, any_db_url: str) -> None:
    running = Listener(write_config(tmp_path, any_db_url)).start()
    try:
        client = running.client()
        replies = deliver(client, "alice@customer.example",
                          ["billing@example.com", "nobody@example.com", "SUPPORT@example.com"], mail(1))
        codes = [code for code, _ in replies]
        assert codes == [250, 550, 250, 250, 250]           # RCPT x3, then DATA once per accepted recipient
        assert b"nobody@example.com" in replies[1][1] and b"SUPPORT@example.com" in replies[4][1]
        assert _stored(any_db_url) == [("billing", "lmtp")]  # stored once, for the first recipient's mailbox
        assert deliver(client, "alice@customer.example", ["nobody@example.com"], mail(2))[0][0] == 550
        assert deliver(client, "alice@customer.example", ["support@example.com"], mail(1))[-1][0] == 250
        client.quit()
        assert listings.messages(any_db_url, limit=5)[0].duplicates == 1      # the same mail again: kept once
    finally:
        running.stop()
        db.dispose()


def test_a_message_acknowledged_is_stored_even_if_the_listener_is_killed(listener: Listener, sqlite_url: str) -> None:
    client = listener.client()
    for n in range(5):
        assert deliver(client, "alice@customer.example", ["support@example.com"], mail(n))[-1][0] == 250
    listener.kill()                                      # SIGKILL right after the last 250
    assert len(_stored(sqlite_url)) == 5


def test_malformed_and_large_mail_is_stored_byte_for_byte(listener: Listener, sqlite_url: str) -> None:
    garbage = b"\xff\xfe not a header at all\r\n\x00\x01 binary \xe9\r\n.leading dot\r\n"
    large = mail(2, body="x" * 70 + "\n") + b"".join(b"line %07d " % i + b"y" * 60 + b"\r\n" for i in range(150_000))
    client = listener.client()
    assert deliver(client, "a@b.example", ["support@example.com"], garbage)[-1][0] == 250
    assert deliver(client, "a@b.example", ["support@example.com"], large)[-1][0] == 250
    client.quit()
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        raws = [row[0] for row in conn.execute("SELECT raw FROM message ORDER BY id")]
    assert raws == [garbage, large] and len(large) > 10_000_000


def test_international_mail_is_taken(listener: Listener, sqlite_url: str) -> None:
    raw = "From: Jörg <jörg@beispiel.de>\r\nTo: support@example.com\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()
    client = listener.client()
    assert deliver(client, "jörg@beispiel.de", ["support@example.com"], raw, ("SMTPUTF8", "BODY=8BITMIME"))[-1][0] == 250
    client.quit()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT raw FROM message").fetchone()[0] == raw


def test_orcpt_as_dovecots_proxy_sends_it_is_accepted_and_other_rcpt_parameters_are_not(listener: Listener,
                                                                                      sqlite_url: str) -> None:
    client = listener.client()
    client.ehlo_or_helo_if_needed()
    assert client.mail("a@b.example")[0] == 250
    assert client.rcpt("support@example.com", ["ORCPT=rfc822;SUPPORT@Example.com"])[0] == 250
    assert client.rcpt("nobody@example.com", ["ORCPT=rfc822;nobody@example.com"])[0] == 550
    assert client.rcpt("billing@example.com", ["NOTIFY=NEVER"])[0] == 555     # DSN is not offered
    assert client.data(mail(1))[0] == 250                                     # one reply: one recipient
    client.quit()
    assert _stored(sqlite_url) == [("support", "lmtp")]


def test_storage_failing_answers_451_and_the_retry_is_stored(listener: Listener, sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE message RENAME TO message_away")
    client = listener.client()
    replies = deliver(client, "a@b.example", ["support@example.com", "billing@example.com"], mail(1))
    assert [code for code, _ in replies] == [250, 250, 451, 451]
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE message_away RENAME TO message")
    assert deliver(client, "a@b.example", ["support@example.com"], mail(1))[-1][0] == 250
    client.quit()
    assert len(_stored(sqlite_url)) == 1


def test_concurrent_clients_on_a_unix_socket_all_get_stored(tmp_path: Path, sqlite_url: str) -> None:
    running = Listener(write_config(tmp_path, sqlite_url), socket_path=tmp_path / "lmtp.sock").start()
    assert stat.S_IMODE((tmp_path / "lmtp.sock").stat().st_mode) == 0o666   # Postfix's user may connect
    codes: list[int] = []

    def client(k: int) -> None:
        c = running.client()
        for n in range(25):
            codes.append(deliver(c, "a@b.example", ["support@example.com"], mail(k * 100 + n))[-1][0])
        c.quit()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    running.stop()
    assert codes == [250] * 200
    assert len(_stored(sqlite_url)) == 200


def test_lmtp_refuses_a_config_without_mailboxes(tmp_path: Path, sqlite_url: str) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    with pytest.raises(RuntimeError, match="no \\[mailboxes.NAME\\]"):
        Listener(config_file).start()


ADDRESS_ARGS = ["<support@example.com>", "<support@example.com> SIZE=1000", " <Support@Example.COM>", "<>",
                "support@example.com", "<\"odd local\"@example.com>", "<@relay.example:a@b.example>", "<a@[127.0.0.1]>",
                "<no-at-sign>", "<unclosed@example.com", "", "<" + "x" * 70 + "@example.com>", "<a@b.example> BODY=8BITMIME",
                "<(comment) a@b.example>", "<a@b.example>>", "< a @ b.example >", "<\u00e9l\u00e8ve@\u00e9cole.example>"]


@pytest.mark.parametrize("limit", [0, 64])
def test_mail_and_rcpt_addresses_parse_exactly_as_aiosmtpd_parses_them_once_per_connection(limit: int) -> None:
    import asyncio

    from aiosmtpd.smtp import SMTP

    from mailagent.worker.lmtp import Server

    loop = asyncio.new_event_loop()
    try:
        server = Server(object(), loop=loop)
        server.local_part_limit = limit
        for arg in ADDRESS_ARGS * 2:
            assert server._getaddr(arg) == SMTP._getaddr(server, arg), arg
        assert len(server.addresses) == len(ADDRESS_ARGS)
        for k in range(Server.ADDRESSES + 1):                   # hostile variety cannot grow it without bound
            assert server._getaddr(f"<c{k}@example.org>") == (f"c{k}@example.org", "")
        assert len(server.addresses) <= Server.ADDRESSES
    finally:
        loop.close()
