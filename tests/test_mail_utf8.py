"""Non-ASCII mail end to end: raw UTF-8 headers (RFC 6532, as Gmail and Postfix with SMTPUTF8
deliver them) read right on every path, and replies whose headers every server accepts."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.policy import default

import pytest

from mailagent.config import Settings
from mailagent.mail import smtp
from mailagent.mail.headers import envelope
from mailagent.mail.parse import parse
from mailagent.pipeline import classify, drafting, outbox, poll
from mailagent.review import drafts
from mailagent.store import db
from mailagent.store.models import Conversation, Message

from .support.dovecot import Dovecot
from .support.smtpd import SmtpServer

GMAIL_8BIT = (
    "From: Zoë Müller <zoe@customer.example>\r\n"
    "To: support@example.com\r\n"
    "Subject: Question about naïve pricing\r\n"
    "Date: Sun, 22 Nov 2026 09:00:00 +0000\r\n"
    "Message-ID: <utf8-1@customer.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hello, how do I change the email address on my account?\r\n"
).encode()


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_the_header_only_reader_decodes_raw_8bit_headers(encoding: str) -> None:
    """The envelope read without a full parse (a message that cannot be parsed is threaded from
    it) gave one U+FFFD per byte: "R��ckerstattung"."""
    raw = "From: Zoë <zoe@customer.example>\r\nSubject: Rückerstattung\r\n\r\nx".encode(encoding)
    env = envelope(raw)
    assert (env.subject, env.from_name, env.from_addr) == ("Rückerstattung", "Zoë", "zoe@customer.example")


def test_a_reply_to_raw_utf8_headers_reads_right_everywhere(sqlite_url: str, settings_for, dovecot: Dovecot,
                                                            imap_user: str, smtp_server: SmtpServer) -> None:
    """IMAP fetch from Dovecot -> draft -> approve -> SMTP (aiosmtpd, no SMTPUTF8) -> Sent folder."""
    settings: Settings = settings_for(sqlite_url, imap_user, sent_folder="Sent")
    dovecot.append(imap_user, "INBOX", GMAIL_8BIT)
    dovecot.append(imap_user, "Sent")
    stored: list[int] = []
    poll.poll(settings, "support", stored.extend)
    [message_id] = stored
    processed = classify.process(settings, message_id)
    assert processed is not None
    with db.session(settings.database.url) as s:
        row = s.get(Message, message_id)
        assert (row.subject, row.from_name) == ("Question about naïve pricing", "Zoë Müller")
    assert processed.conversation.subject == "Question about naïve pricing"
    outcome = drafting.draft_reply_sync(settings, processed.conversation.id)
    assert outcome.draft_id is not None
    approved = drafts.approve(settings, outcome.draft_id, "rep@example.com")
    assert approved.outbound_id is not None
    assert outbox.deliver(settings, approved.outbound_id).outcome.status == "sent"
    assert outbox.save_to_sent(settings, approved.outbound_id)

    [received] = smtp_server.received
    head = received.data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()                       # RFC 2047 words: no server needs SMTPUTF8 for it
    with dovecot.client(imap_user) as c:
        c.select_folder("Sent")
        [uid] = c.search(["ALL"])
        saved = c.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    for raw in (received.data, saved):
        sent = message_from_bytes(raw, policy=default)
        assert sent["Subject"] == "Re: Question about naïve pricing"
        assert sent["To"].addresses[0].display_name == "Zoë Müller"
        assert sent["To"].addresses[0].addr_spec == "zoe@customer.example"
        assert sent.get_body(("plain",)).get_content().startswith("Hi Zoë,")
        ours = parse(raw)
        assert ours.subject == "Re: Question about naïve pricing" and ours.text.startswith("Hi Zoë,")


def _reply(to: str, to_name: str = "") -> smtp.Reply:
    return smtp.Reply(sender="support@example.com", sender_name="Support", to=(to,), subject="Frage",
                      text="Hallo", to_name=to_name)


def test_a_hostile_display_name_is_not_echoed_in_to(sqlite_url: str, settings_for) -> None:
    """Only a display name the greeting may use goes into To (see test_injection_sets too)."""
    settings = settings_for(sqlite_url)
    with db.session(sqlite_url) as s:
        conversation = Conversation(mailbox="support", customer_addr="eve@customer.example")
        s.add(conversation)
        s.flush()
        for n, (name, shown) in enumerate((("URGENT your account is locked call +1-900-555-0100", ""),
                                           ("Zoë Müller", "Zoë Müller"))):
            turn = Message(dedup_key=f"id:{n}@c", message_id=f"{n}@c", sha256="0", raw=b"", source="file",
                           from_addr="eve@customer.example", from_name=name, subject="Hi",
                           conversation_id=conversation.id)
            s.add(turn)
            s.flush()
            row = outbox.queue_reply(s, settings, conversation.id, "support", outbox.Parent.of(turn), "Hello", None)
            to = message_from_bytes(row.raw, policy=default)["To"].addresses[0]
            assert (to.display_name, to.addr_spec) == (shown, "eve@customer.example")


def test_a_display_name_cannot_inject_headers() -> None:
    _, raw = smtp.compose(_reply("eve@customer.example", "Eve\r\nBcc: victim@example.org"))
    sent = message_from_bytes(raw, policy=default)
    assert sent["Bcc"] is None and sent["To"].addresses[0].display_name == "Eve Bcc: victim@example.org"


def test_an_international_domain_goes_out_as_idna(smtp_server: SmtpServer, settings_for, sqlite_url: str) -> None:
    settings = settings_for(sqlite_url)
    to = smtp.ascii_domain("zoe@bücher.example")
    assert to == "zoe@xn--bcher-kva.example"
    _, raw = smtp.compose(_reply(to))
    outcome = asyncio.run(smtp.send(settings.mailbox("support").smtp, "support@example.com", [to], raw, deadline=30))
    assert outcome.status == "sent" and smtp_server.received[0].recipients == [to]


def test_a_non_ascii_local_part_needs_smtputf8(settings_for, sqlite_url: str) -> None:
    """Without SMTPUTF8 the server cannot take it: failed, saying why (it crashed the send before);
    with it, the address and the headers go out as UTF-8 (RFC 6531 / 6532)."""
    to = "zoë@customer.example"
    _, raw = smtp.compose(_reply(to, "Zoë"))
    for offered in (False, True):
        server = SmtpServer(smtputf8=offered).start()
        try:
            cfg = settings_for(sqlite_url).mailbox("support").smtp.model_copy(update={"port": server.port})
            outcome = asyncio.run(smtp.send(cfg, "support@example.com", [to], raw, deadline=30))
        finally:
            server.stop()
        if not offered:
            assert outcome.status == "failed" and "SMTPUTF8" in outcome.detail and server.received == []
        else:
            assert outcome.status == "sent", outcome.detail
            assert server.received[0].recipients == [to]
            assert "To: Zoë <zoë@customer.example>\r\n".encode() in server.received[0].data
            assert parse(server.received[0].data).to == (to,)
