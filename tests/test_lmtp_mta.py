"""`mailagent lmtp` behind real MTAs, configured as README's "Mail in" says: a private Postfix (TCP
and Unix socket transports) and a Dovecot LMTP server that proxies the support address."""

from __future__ import annotations

import re
import shutil
import smtplib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

import pytest

from .support.dovecot_lmtp import DovecotLmtp
from .support.lmtp import Listener, deliver, write_config
from .support.mails import mail
from .support.postfix import HOSTNAME, Postfix, wait_for

SENDER = "alice@customer.example"

FORMS = {
    # mail for local users (mydestination) handed to the listener; local_recipient_maps empty, so the
    # listener's 550 decides who exists (otherwise smtpd only knows Unix users and aliases)
    "tcp": "mydestination = example.com\nlocal_recipient_maps =\nmailbox_transport = lmtp:inet:127.0.0.1:{port}\n",
    # a domain that is all support mail; the socket path is relative to the queue directory, so it
    # is the same for Postfix's lmtp client chrooted there (as Debian ships it) or not
    "unix": "virtual_mailbox_domains = example.com\nvirtual_transport = lmtp:unix:mailagent/lmtp.sock\n",
}
RECEIVED = re.compile(rb"Received: from [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*")


@dataclass
class Mta:
    postfix: Postfix
    listener: Listener
    db: Path

    def stored(self) -> list[tuple[str, bytes]]:
        with sqlite3.connect(self.db) as conn:
            return list(conn.execute("SELECT mailbox, raw FROM message ORDER BY id"))

    def settled(self, count: int) -> list[tuple[str, bytes]]:
        """What is stored once Postfix's queue is empty and `count` messages are in."""
        return wait_for(f"{count} message(s) stored and an empty queue",
                        lambda: rows if len(rows := self.stored()) >= count and not self.postfix.queue() else None)


@pytest.fixture(params=sorted(FORMS))
def mta(request: pytest.FixtureRequest, tmp_path: Path, open_tmp: Path, sqlite_url: str) -> Iterator[Mta]:
    postfix = Postfix(open_tmp, "")
    if request.param == "unix":
        # as README: `install -d -o mailagent -g postfix -m 0750 /var/spool/postfix/mailagent`
        sockets = postfix.queue_dir / "mailagent"
        sockets.mkdir(parents=True)
        shutil.chown(sockets, group="postfix")
        sockets.chmod(0o750)
        listener = Listener(write_config(tmp_path, sqlite_url), socket_path=sockets / "lmtp.sock")
    else:
        listener = Listener(write_config(tmp_path, sqlite_url))
    postfix.settings = FORMS[request.param].format(port=listener.port)
    listener.start()
    try:
        yield Mta(postfix.start(), listener, Path(sqlite_url.removeprefix("sqlite:///")))
    finally:
        try:
            postfix.stop()
        finally:
            listener.stop()


def _body(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[2]


def test_postfix_delivers_each_message_once_byte_for_byte_and_bounces_an_unknown_recipient(mta: Mta) -> None:
    sent = {f"<m{n}.alice@customer.example>": mail(n, body=f"Grüße {n}\n.a line that starts with a dot\n")
            for n in range(10)}
    for raw in sent.values():
        assert mta.postfix.send(SENDER, ["support@example.com"], raw) == {}
    assert mta.postfix.send(SENDER, ["nobody@example.com"], mail(99)) == {}   # Postfix takes it, then asks us

    stored = mta.settled(len(sent))
    assert len(stored) == len(sent)                                           # each exactly once
    for mailbox, raw in stored:
        message_id = message_from_bytes(raw)["Message-ID"]
        original = sent.pop(message_id)
        assert mailbox == "support"
        assert raw.endswith(original) and _body(raw) == _body(original) and b"\xc3\xbc" in _body(raw)
        added = raw[:-len(original)]                                          # only Postfix's trace header
        assert RECEIVED.fullmatch(added) and f"by {HOSTNAME} (Postfix)".encode() in added
    assert sent == {}

    bounced = wait_for("the bounce", lambda: re.search(
        r"postfix/lmtp\[\d+\]: (\w+): to=<nobody@example.com>.*status=bounced \((.*)\)", mta.postfix.log()))
    assert "said: 550 5.1.1 <nobody@example.com>: no such mailbox here (in reply to RCPT TO command)" in bounced[2]
    wait_for("the DSN", lambda: f"{bounced[1]}: sender non-delivery notification" in mta.postfix.log() or None)


def test_a_listener_outage_makes_postfix_defer_and_the_flushed_queue_delivers_it_once(mta: Mta) -> None:
    mta.listener.stop()
    assert mta.postfix.send(SENDER, ["support@example.com"], mail(1)) == {}
    deferred = wait_for("the deferral", lambda: next(
        (q for q in mta.postfix.queue() if q["queue_name"] == "deferred"), None))
    assert "Connection refused" in deferred["recipients"][0]["delay_reason"]
    assert mta.stored() == []

    mta.listener.start()
    mta.postfix.flush()
    stored = mta.settled(1)
    assert [(mailbox, raw.endswith(mail(1))) for mailbox, raw in stored] == [("support", True)]
    assert f"{deferred['queue_id']}: to=<support@example.com>" in mta.postfix.log()


def test_dovecot_proxies_the_support_address_and_keeps_its_own_mailboxes(tmp_path: Path, open_tmp: Path,
                                                                       sqlite_url: str) -> None:
    listener = Listener(write_config(tmp_path, sqlite_url)).start()
    dovecot = DovecotLmtp(open_tmp, proxied={"support@example.com": listener.port}, local=["rep@example.com"])
    try:
        dovecot.start()
        raw = mail(1)
        client = smtplib.LMTP("127.0.0.1", dovecot.port, timeout=30)
        # the upper case makes Dovecot send ORCPT to the listener (its passdb key is lower case)
        replies = deliver(client, SENDER, ["SUPPORT@Example.com", "nobody@example.com", "rep@example.com"], raw)
        client.quit()
        assert [code for code, _ in replies] == [250, 550, 250, 250, 250]
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
            stored = list(conn.execute("SELECT mailbox, raw FROM message"))
        assert [mailbox for mailbox, _ in stored] == ["support"]
        added = stored[0][1][:-len(raw)]
        assert stored[0][1].endswith(raw) and RECEIVED.fullmatch(added) and b"with LMTP" in added
        unix_lines = raw.replace(b"\r\n", b"\n")                         # Maildir files end lines with LF
        assert [m.endswith(unix_lines) for m in dovecot.delivered("rep@example.com")] == [True]
        assert "Sent message to <support@example.com> at 127.0.0.1:" in (open_tmp / "dovecot.log").read_text()
    finally:
        dovecot.stop()
        listener.stop()
