"""Bounces of our own replies: which reply a DSN reports (read from real DSNs), and a real Postfix
bounce of a reply we sent marking that delivery failed, in that reply's conversation, for a person."""

from __future__ import annotations

import re

import pytest
from sqlmodel import func, select

from mailagent.cli import views
from mailagent.mail.dsn import delivery_report
from mailagent.mail.parse import parse_tree
from mailagent.pipeline import classify, drafting, outbox, poll
from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.review import drafts
from mailagent.store import db, queue
from mailagent.store.models import Conversation, Draft, Message, Outbound

from .corpora import corpora
from .support.dovecot import Dovecot
from .support.flow import receive
from .support.mails import mail
from .support.smtpd import SmtpServer

BSD = corpora() / "sisimai_set_of_emails" / "maildir" / "bsd"


def _report(name: str):
    return delivery_report(parse_tree((BSD / name).read_bytes())[1])


@pytest.mark.parametrize(("name", "ids", "failed", "summary"), [
    # Postfix, the original attached as message/rfc822 (its header block broken by a bad line)
    ("lhost-postfix-57.eml", ("44kWHZ2S3Qz1yxHC@rokujo.cr.nyaan.jp",), True,
     "5.2.1 kijitora@cr.nyaan.jp: 550 5.2.1 <kijitora@cr.nyaan.jp>... User Unknown"),
    # Postfix, only the original's header returned (text/rfc822-headers)
    ("lhost-postfix-43.eml", ("11DA6AA80A5481396A07708AE233289E@nekonyaan",), True,
     "4.3.0 kijitora@example.net: temporary failure"),
    # Postfix, the original without a Message-ID: nothing to link, still a failure
    ("lhost-postfix-01.eml", (), True, ("5.1.1 r@p351355.pool.example.ne.jp: procmail: Couldn't create "
                                        "\"/var/spool/mail/neko\" id: r.example.org: No such user")),
    # a delay notice is not a failure
    ("rfc3464-07.eml", ("000000000000000@list.example.jp",), False, None),
    # qmail quotes the original inline, with no report part
    ("lhost-qmail-01.eml", ("000000000.9999999999999.JavaMail.postmaster@mailhub",), True,
     "a delivery failure notice without a machine-readable report"),
])
def test_which_message_a_real_dsn_reports(name: str, ids: tuple[str, ...], failed: bool, summary: str | None) -> None:
    report = _report(name)
    assert report.original_ids == ids
    assert report.failed is failed
    if summary is not None:
        assert report.summary() == summary


def test_every_postfix_dsn_names_its_original() -> None:
    """Across all 69 Postfix bounces: whenever the returned original carries a Message-ID (found
    here independently, as the bracketed Message-ID lines that are not the bounce's own), it is
    the one reported, and the bounce's own id never is."""
    checked = 0
    for path in sorted(BSD.glob("lhost-postfix-*.eml")):
        raw = path.read_bytes()
        lines = re.findall(rb"(?im)^message-id:[ \t]*<([^<>\s]+)>", raw)
        own, *others = [i.decode() for i in lines]
        report = _report(path.name)
        assert own not in report.original_ids, path.name
        if len(set(others) - {own}) == 1 and b"message/rfc822" in raw.lower().replace(b"text/rfc822-headers",
                                                                                     b"message/rfc822"):
            assert report.original_ids == tuple(set(others) - {own}), path.name
            checked += 1
    assert checked >= 55


def _bounce_of(sent: bytes) -> bytes:
    """A real Postfix DSN (sisimai lhost-postfix-57) returning `sent` as its attached original."""
    template = (BSD / "lhost-postfix-57.eml").read_bytes()
    head = template[: template.index(b"Content-Type: message/rfc822\n\n") + len(b"Content-Type: message/rfc822\n\n")]
    boundary = template.rstrip().rsplit(b"\n", 1)[1]
    return head + sent.replace(b"\r\n", b"\n") + b"\n" + boundary + b"\n"


def test_a_bounce_of_our_reply_fails_it_in_its_conversation_for_a_person(
        any_db_url: str, settings_for, dovecot: Dovecot, imap_user: str, smtp_server: SmtpServer) -> None:
    settings = settings_for(any_db_url, imap_user)
    [outcome] = receive(settings, mail(1, body="Hello, how do I export my notes?\n\nAlice\n"))
    approved = drafts.approve(settings, outcome.draft_id, "rep@example.com")
    assert outbox.deliver(settings, approved.outbound_id).outcome.status == "sent"
    [sent] = smtp_server.received
    dovecot.append(imap_user, "INBOX", _bounce_of(sent.data))
    stored: list[int] = []
    poll.poll(settings, "support", stored.extend)
    [bounce_id] = stored
    processed = classify.process(settings, bounce_id)
    assert drafting.draft_reply_sync(settings, processed.conversation.id).step == "nothing"  # as the actor would
    url = settings.database.url
    with db.session(url) as s:
        reply = s.get(Outbound, approved.outbound_id)
        bounce = s.get(Message, bounce_id)
        draft = s.get(Draft, outcome.draft_id)
        conversations = s.exec(select(func.count()).select_from(Conversation)).one()
    assert bounce.kind == "bounce"
    assert processed.conversation.id == reply.conversation_id and conversations == 1   # no conversation of its own
    assert reply.state == "failed"
    assert reply.last_error == (f"bounced (message {bounce_id}): 5.2.1 kijitora@cr.nyaan.jp: 550 5.2.1 "
                                "<kijitora@cr.nyaan.jp>... User Unknown")
    assert (draft.state, draft.needs_human, draft.rule) == ("held", True, "invariant: our reply bounced")
    assert "bounced" in draft.needs_human_reason
    assert [i.draft_id for i in queue.queue(url).items] == [outcome.draft_id]      # back in the review queue
    shown = views.conversation_detail(url, reply.conversation_id)
    assert f"message {bounce_id} from mailer-daemon@rokujo.cr.nyaan.jp [bounce]" in shown
    assert f"[failed, approved by rep@example.com] bounced (message {bounce_id}): 5.2.1" in shown
    assert "our reply bounced" in views.draft_detail(url, outcome.draft_id)


def test_a_bounce_of_mail_we_did_not_send_changes_nothing(sqlite_url: str, settings_for) -> None:
    settings = settings_for(sqlite_url)
    [outcome] = receive(settings, mail(1))
    [bounce_id] = store_many(sqlite_url, [Inbound((BSD / "lhost-postfix-57.eml").read_bytes(), "file", "support")])
    processed = classify.process(settings, bounce_id)
    with db.session(sqlite_url) as s:
        assert s.exec(select(func.count()).select_from(Conversation)).one() == 2
        assert s.get(Draft, outcome.draft_id).rule != "invariant: our reply bounced"
    assert processed.kind == "bounce"
