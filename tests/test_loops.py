"""Automated-mail detection: one small message per rule, the precedence order, and real corpora.

The corpora (`tests/corpora`) are the ground truth: every Sisimai bounce, report and
auto-reply must be caught, and real people's mail (talon, github/email_reply_parser, stalwart)
must not be.
"""

from __future__ import annotations

import email
import json
import re
from collections.abc import Callable
from email.message import Message
from email.policy import compat32
from pathlib import Path

import pytest

from mailagent.mail.headers import read_headers
from mailagent.mail.loops import Kind, Verdict, classify

from .corpora import corpora

CORPORA = corpora()
SISIMAI = CORPORA / "sisimai_set_of_emails"

CUSTOMER = {
    "From": "Jane Doe <jane@example.com>",
    "To": "support@shop.example",
    "Subject": "Where is my order?",
}
BODY = "Hi,\n\nmy order 1234 has not arrived yet. Can you check?\n\nJane\n"


def raw(headers: str = "", body: str = BODY) -> bytes:
    """A message from a customer, with `headers` (one per line) added or replacing the defaults."""
    lines = headers.strip().splitlines()
    given = {line.split(":", 1)[0].lower() for line in lines if line and not line[0].isspace()}
    defaults = [f"{name}: {value}" for name, value in CUSTOMER.items() if name.lower() not in given]
    return ("\n".join(defaults + lines) + "\n\n" + body).encode()


def full(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=compat32)


def header_only(data: bytes) -> Message:
    """What the IMAP loop has: the header block and nothing else (some corpus files are CRLF)."""
    end = re.search(rb"\r?\n\r?\n", data)
    return read_headers(data[: end.end()] if end else data)


@pytest.fixture(params=[full, header_only], ids=["full", "header-only"])
def parse(request: pytest.FixtureRequest) -> Callable[[bytes], Message]:
    """Header rules must hold whether or not the body was parsed."""
    return request.param


def corpus(folder: Path, pattern: str) -> list[Path]:
    """The files of a corpus folder; a missing corpus fails the test rather than skipping it."""
    assert folder.is_dir(), f"corpus folder missing: {folder}"
    files = sorted(path for path in folder.glob(pattern) if path.is_file())
    assert files, f"no {pattern} in {folder}"
    return files


# --- rules, one small message each ----------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated",
        "Auto-Submitted: auto-notified; owner-email=a@b.example",
        "X-Autoreply: yes",
        "X-Autorespond: vacation",
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: auto_reply",
    ],
)
def test_auto_reply_headers(parse: Callable[[bytes], Message], header: str) -> None:
    assert classify(parse(raw(header))) == Verdict(Kind.AUTO_REPLY, header)


@pytest.mark.parametrize("return_path", ["<>", "<MAILER-DAEMON>"])
def test_null_return_path_is_automated(parse: Callable[[bytes], Message], return_path: str) -> None:
    """Sendmail writes the null sender as <MAILER-DAEMON>."""
    verdict = classify(parse(raw(f"Return-Path: {return_path}")))
    assert verdict == Verdict(Kind.AUTO_REPLY, "null return path <>")


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Where is my order?",
        "Auto reply: Where is my order?",
        "Auto-Reply: Where is my order?",
        "AutoReply: Where is my order?",
        "Auto Response: Where is my order?",
        "Out of Office AutoReply: Where is my order?",
        "Automatische Antwort: Wo ist meine Bestellung?",
        "=?utf-8?q?R=C3=A9ponse_automatique_:?= Ma commande",
    ],
)
def test_auto_reply_subjects_that_only_clients_write(
    parse: Callable[[bytes], Message], subject: str
) -> None:
    verdict = classify(parse(raw(f"Subject: {subject}")))
    assert verdict.kind is Kind.AUTO_REPLY
    assert verdict.reason.startswith("subject ")


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: back on Monday",
        "AUTO: Jane Doe is out of the office (returning 05/05/2025)",
        "Abwesenheitsnotiz: Wo ist meine Bestellung?",
    ],
)
def test_suggestive_subject_needs_x_auto_response_suppress(
    parse: Callable[[bytes], Message], subject: str
) -> None:
    assert classify(parse(raw(f"Subject: {subject}"))).kind is Kind.NORMAL
    backed = classify(parse(raw(f"Subject: {subject}\nX-Auto-Response-Suppress: All")))
    assert backed.kind is Kind.AUTO_REPLY
    assert backed.reason.endswith("with X-Auto-Response-Suppress")


@pytest.mark.parametrize("value", ["All", "OOF", "AutoReply", "DR, RN, NRN", "OOF, AutoReply"])
def test_x_auto_response_suppress_alone_is_not_evidence(
    parse: Callable[[bytes], Message], value: str
) -> None:
    """Exchange stamps it on people's mail too (meeting items, distribution lists): it asks the
    recipient not to auto-reply, it does not say that the message is an auto-reply."""
    assert classify(parse(raw(f"X-Auto-Response-Suppress: {value}"))).kind is Kind.NORMAL


@pytest.mark.parametrize("envelope", ["<>", ""])
def test_null_envelope_sender_is_automated(envelope: str) -> None:
    verdict = classify(full(raw()), envelope_from=envelope)
    assert verdict == Verdict(Kind.AUTO_REPLY, "null return path <>")


def test_envelope_sender_wins_over_the_return_path_header() -> None:
    message = full(raw("Return-Path: <>"))
    assert classify(message, envelope_from="jane@example.com").kind is Kind.NORMAL


DSN = """\
From: Mail Delivery System <MAILER-DAEMON@mx.shop.example>
To: support@shop.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

This is the mail system at host mx.shop.example.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.shop.example

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1

--b1
Content-Type: text/rfc822-headers

From: support@shop.example
Subject: Re: Where is my order?

--b1--
"""


def test_delivery_status_report(parse: Callable[[bytes], Message]) -> None:
    verdict = classify(parse(DSN.encode()))
    assert verdict == Verdict(Kind.BOUNCE, "multipart/report; report-type=delivery-status")


def test_read_receipt_is_a_delivery_report(parse: Callable[[bytes], Message]) -> None:
    mdn = DSN.replace("delivery-status;", "disposition-notification;").replace(
        "Subject: Undelivered Mail Returned to Sender", "Subject: Read: Where is my order?"
    )
    verdict = classify(parse(mdn.encode()))
    assert verdict == Verdict(Kind.BOUNCE, "multipart/report; report-type=disposition-notification")


def test_delivery_status_part_in_a_mixed_message() -> None:
    data = DSN.replace("multipart/report; report-type=delivery-status", "multipart/mixed").replace(
        "Mail Delivery System <MAILER-DAEMON@mx.shop.example>", "Relay <relay@mx.shop.example>"
    )
    assert classify(full(data.encode())) == Verdict(Kind.BOUNCE, "message/delivery-status part")


def test_x_failed_recipients(parse: Callable[[bytes], Message]) -> None:
    verdict = classify(parse(raw("X-Failed-Recipients: gone@example.org")))
    assert verdict == Verdict(Kind.BOUNCE, "X-Failed-Recipients: gone@example.org")


@pytest.mark.parametrize(
    "sender",
    [
        "From: MAILER-DAEMON@mx.example.net",
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "From: Postmaster <postmaster@example.net>",
        "From: MAILER-DAEMON <>",
        "From: System Administrator <admin@example.net>\nReturn-Path: <>",
    ],
)
@pytest.mark.parametrize(
    "subject",
    [
        "Undelivered Mail Returned to Sender",
        "Delivery Status Notification (Failure)",
        "Mail delivery failed: returning message to sender",
        "Returned mail: see transcript for details",
        "failure notice",
        "Undeliverable: Where is my order?",
        "Warning: message 1abc delayed 24 hours",
    ],
)
def test_report_subject_from_the_mail_system(
    parse: Callable[[bytes], Message], sender: str, subject: str
) -> None:
    verdict = classify(parse(raw(f"{sender}\nSubject: {subject}")))
    assert verdict.kind is Kind.BOUNCE
    assert verdict.reason == f"subject {subject!r} from the mail system"


def test_returned_message_attached_by_the_mail_system() -> None:
    data = """\
From: postmaster@example.net
To: support@shop.example
Subject: Notice
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be handed on.

--b1
Content-Type: message/rfc822

From: support@shop.example
Subject: Re: Where is my order?

Hello
--b1--
"""
    verdict = classify(full(data.encode()))
    assert verdict == Verdict(Kind.BOUNCE, "returned message attached by the mail system")


def test_smtp_error_from_the_mail_system() -> None:
    body = "Error: Invalid user address\n\n550 - Requested action not taken: no such user here\n"
    data = raw("From: post_master@vtext.example\nSubject: Re: Where is my order?", body)
    verdict = classify(full(data))
    assert verdict == Verdict(Kind.BOUNCE, "SMTP error in a message from the mail system")


def test_report_fields_in_a_plain_text_bounce() -> None:
    body = "Final-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.1.1\n"
    verdict = classify(full(raw("Subject: Hello", body)))
    assert verdict == Verdict(Kind.BOUNCE, "delivery-status fields in the body")


def test_forwarded_report_fields_count_as_a_bounce() -> None:
    """A decision, after Sisimai's lhost-sendmail-14: a report forwarded inline with its
    machine-readable fields is still a bounce (whereas a bounce attached as a file, or described
    in prose, is the customer's message)."""
    body = (
        "Forward the message.\n\nBegin forwarded message:\n\n"
        "> Final-Recipient: RFC822; gone@example.org\n> Action: failed\n> Status: 5.1.1\n"
    )
    data = raw("Subject: Fwd: Returned mail: see transcript for details", body)
    assert classify(full(data)).kind is Kind.BOUNCE


SES = """\
From: SES-Notifications <no-reply@sns.amazonaws.com>
To: support@shop.example
Subject: AWS Notification Message
x-amz-sns-message-id: a9824ea2-483c-5c29-a61a-1e13d2f2a6c2
Content-Type: text/plain; charset=UTF-8

{{"notificationType":"{kind}","mail":{{"source":"support@shop.example"}}}}
"""


@pytest.mark.parametrize(
    ("notification", "verdict"),
    [
        ("Bounce", Verdict(Kind.BOUNCE, "Amazon SES bounce notification")),
        ("Delivery", Verdict(Kind.BOUNCE, "Amazon SES delivery notification")),
        ("Complaint", Verdict(Kind.FEEDBACK, "Amazon SES complaint notification")),
    ],
)
def test_amazon_ses_notifications(notification: str, verdict: Verdict) -> None:
    data = SES.format(kind=notification).encode()
    assert classify(full(data)) == verdict
    headers_alone = classify(header_only(data))
    assert headers_alone == Verdict(Kind.NO_REPLY, "sender no-reply@sns.amazonaws.com")


def test_abuse_report(parse: Callable[[bytes], Message]) -> None:
    arf = DSN.replace("delivery-status;", "feedback-report;").replace(
        "Subject: Undelivered Mail Returned to Sender", "Subject: Abuse Report"
    )
    verdict = classify(parse(arf.encode()))
    assert verdict == Verdict(Kind.FEEDBACK, "multipart/report; report-type=feedback-report")


def test_feedback_report_part_in_a_mixed_message() -> None:
    data = DSN.replace("multipart/report; report-type=delivery-status", "multipart/mixed").replace(
        "message/delivery-status", "message/feedback-report"
    )
    assert classify(full(data.encode())) == Verdict(Kind.FEEDBACK, "message/feedback-report part")


def test_apple_mail_unsubscribe(parse: Callable[[bytes], Message]) -> None:
    data = raw("Subject: unsubscribe\nX-Apple-Unsubscribe: true")
    assert classify(parse(data)) == Verdict(Kind.FEEDBACK, "X-Apple-Unsubscribe: true")


def test_microsoft_jmrp_complaint(parse: Callable[[bytes], Message]) -> None:
    data = raw("From: staff@hotmail.com\nSubject: complaint about message from 192.0.2.222")
    assert classify(parse(data)).kind is Kind.FEEDBACK
    human = raw("Subject: Complaint about message from your agent")
    assert classify(parse(human)).kind is Kind.NORMAL


@pytest.mark.parametrize(
    "header",
    [
        "List-Id: <dev.lists.example.org>",
        "List-Unsubscribe: <mailto:leave@lists.example.org>",
        "List-Post: <mailto:dev@lists.example.org>",
        "Mailing-List: contact dev-help@example.org; run by ezmlm",
        "Precedence: list",
    ],
)
def test_mailing_list(parse: Callable[[bytes], Message], header: str) -> None:
    assert classify(parse(raw(header))) == Verdict(Kind.LIST, header)


def test_long_header_values_are_shortened_in_the_reason() -> None:
    verdict = classify(full(raw(f"List-Unsubscribe: <https://lists.example.org/{'x' * 200}>")))
    assert verdict.kind is Kind.LIST
    assert len(verdict.reason) < 100


@pytest.mark.parametrize(
    "address",
    [
        "noreply@example.com",
        "no-reply@example.com",
        "No_Reply@Example.com",
        "donotreply@example.com",
        "do-not-reply@example.com",
        "dmarc-noreply@example.com",
        "noreply+orders@example.com",
        "mailer-daemon@example.com",
        "bounces+12345-abcd=shop.example@em.example.com",
        "notifications@github.com",
    ],
)
def test_no_reply_sender(parse: Callable[[bytes], Message], address: str) -> None:
    verdict = classify(parse(raw(f"From: Shop <{address}>")))
    assert verdict == Verdict(Kind.NO_REPLY, f"sender {address.lower()}")


def test_no_reply_sender_replying_from_its_own_site() -> None:
    data = raw("From: notifications@tracker.example\nReply-To: reply+7f3a@tracker.example")
    assert classify(full(data)).kind is Kind.NO_REPLY


def test_web_form_sent_as_noreply_for_a_customer_is_answered() -> None:
    """A contact form sends as noreply@ with the customer in Reply-To: that is a person."""
    data = raw("From: Shop website <noreply@shop.example>\nReply-To: Jane Doe <jane@example.com>")
    assert classify(full(data)).kind is Kind.NORMAL


@pytest.mark.parametrize(
    "headers",
    ["From: Support <Support@Shop.Example>", "X-Mailagent-Id: 3f9c1b2a"],
    ids=["own address", "own header"],
)
def test_own_mail(parse: Callable[[bytes], Message], headers: str) -> None:
    verdict = classify(parse(raw(headers)), own_addresses=[" support@shop.example "])
    assert verdict.kind is Kind.OWN


def test_own_reasons() -> None:
    own = classify(full(raw("From: support@shop.example")), own_addresses=["support@shop.example"])
    assert own.reason == "sender support@shop.example is our own address"
    header = classify(full(raw("X-Mailagent-Id: 3f9c1b2a")))
    assert header.reason == "X-Mailagent-Id: 3f9c1b2a"


# --- people's mail stays NORMAL -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ("Subject: My email bounced", "My mail to you bounced: 550 5.1.1 user unknown.\n"),
        ("Subject: Undeliverable parcel", "The courier says the parcel is undeliverable.\n"),
        ("Subject: Re: Automatic reply: Where is my order?", "Your auto-reply said to write.\n"),
        ("Subject: Out of office next week, can you ship before?", BODY),
        ("Subject: Vacation\nIn-Reply-To: <a1@shop.example>", "I am away, hold my order.\n"),
        ("Auto-Submitted: no", BODY),
        ("From: replyguy@example.com", BODY),
        ("From: jane.noreplyson@example.com", BODY),
        ("From: noreplyson@example.com", BODY),
        ("From: notificationsfan@example.com", BODY),
        ("From: Postmaster <postmaster@example.net>\nSubject: About your invoice", BODY),
        ("From: Mailer Daemon Fan <fan@example.com>\nSubject: Hello", BODY),
        ("Subject: SES problem", '{"notificationType":"Bounce"} is what I get, why?\n'),
        ("X-Mailgun-Mailing-List-Id: 1q", BODY),
    ],
)
def test_people_stay_normal(parse: Callable[[bytes], Message], headers: str, body: str) -> None:
    assert classify(parse(raw(headers, body))) == Verdict(Kind.NORMAL, "no sign of automated mail")


FORWARDED_AS_FILES = """\
From: Jane Doe <jane@example.com>
To: support@shop.example
Subject: Fwd: your answer bounced, see attached
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

Your answer to me bounced, both mails are attached.

--b1
Content-Type: message/rfc822

From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
Subject: Undelivered Mail Returned to Sender
Content-Type: text/plain

Final-Recipient: rfc822; jane@example.com
Action: failed
Status: 5.1.1

--b1
Content-Type: message/rfc822

From: support@shop.example
Subject: Re: Where is my order?
X-Mailagent-Id: 3f9c1b2a

It has shipped.
--b1--
"""


def test_attached_mail_describes_other_mail() -> None:
    """A customer who attaches the bounce they got, or our own answer, is still a customer."""
    message = full(FORWARDED_AS_FILES.encode())
    assert classify(message, own_addresses=["support@shop.example"]).kind is Kind.NORMAL


# --- precedence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ("From: support@shop.example\nAuto-Submitted: auto-replied\nList-Id: <x>", Kind.OWN),
        ("X-Mailagent-Id: 1\nX-Failed-Recipients: gone@example.org", Kind.OWN),
        ("X-Failed-Recipients: gone@example.org\nX-Apple-Unsubscribe: true", Kind.FEEDBACK),
        ("From: Mailer-Daemon@x\nSubject: Mail failure\nAuto-Submitted: auto-replied", Kind.BOUNCE),
        ("X-Failed-Recipients: gone@example.org\nPrecedence: list", Kind.BOUNCE),
        ("Auto-Submitted: auto-generated\nList-Id: <dev.lists.example.org>", Kind.AUTO_REPLY),
        ("Return-Path: <>\nList-Id: <dev.lists.example.org>", Kind.AUTO_REPLY),
        ("From: noreply@lists.example.org\nList-Id: <dev.lists.example.org>", Kind.LIST),
        ("From: mailer-daemon@mx.example\nSubject: Undeliverable: hi", Kind.BOUNCE),
    ],
)
def test_precedence(parse: Callable[[bytes], Message], headers: str, kind: Kind) -> None:
    assert classify(parse(raw(headers)), own_addresses=["support@shop.example"]).kind is kind


def test_report_beats_auto_submitted_and_no_reply_sender() -> None:
    arf = DSN.replace("delivery-status;", "feedback-report;").replace(
        "Mail Delivery System <MAILER-DAEMON@mx.shop.example>", "no-reply@isp.example"
    )
    arf = arf.replace("MIME-Version: 1.0", "MIME-Version: 1.0\nAuto-Submitted: auto-generated")
    assert classify(full(arf.encode())).kind is Kind.FEEDBACK


def test_automated_is_everything_but_normal() -> None:
    assert [kind for kind in Kind if Verdict(kind, "").automated] == [
        kind for kind in Kind if kind is not Kind.NORMAL
    ]
    assert not Verdict(Kind.NORMAL, "").automated


# --- corpora --------------------------------------------------------------------------------

# Messages whose header block alone looks like a person's: vtext.com bounces that reuse the
# original subject ("Re: ...") and a bounce that a person forwarded.
HEADER_ONLY_MISSES = {"lhost-apachejames-01.eml", "lhost-verizon-02.eml", "lhost-sendmail-14.eml"}
# Not classed BOUNCE although Sisimai finds a bounce: fml list-manager errors (LIST) and a KDDI
# error mail from a no-reply address with a Japanese subject and no attachment (NO_REPLY).
NOT_BOUNCE = {"lhost-fml-02.eml", "lhost-fml-03.eml", "lhost-kddi-01.eml"}


@pytest.fixture(scope="module")
def sisimai_expected() -> dict[str, set[str]]:
    table = json.loads((SISIMAI / "expected.json").read_text())["files"]
    return {name: {row["reason"] for row in rows} for name, rows in table.items()}


@pytest.fixture(scope="module")
def sisimai_bounces() -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in corpus(SISIMAI / "maildir" / "bsd", "*.eml")]


def test_every_sisimai_message_is_automated(sisimai_bounces: list[tuple[str, bytes]]) -> None:
    assert len(sisimai_bounces) == 629
    missed = [name for name, data in sisimai_bounces if not classify(full(data)).automated]
    assert missed == []


def test_sisimai_header_only(sisimai_bounces: list[tuple[str, bytes]]) -> None:
    missed = {name for name, data in sisimai_bounces if not classify(header_only(data)).automated}
    assert missed <= HEADER_ONLY_MISSES
    assert 1 - len(missed) / len(sisimai_bounces) > 0.99


def test_sisimai_kinds(
    sisimai_bounces: list[tuple[str, bytes]], sisimai_expected: dict[str, set[str]]
) -> None:
    wrong = []
    for name, data in sisimai_bounces:
        reasons = sisimai_expected.get(name, set())
        if "vacation" in reasons:
            expected = Kind.AUTO_REPLY
        elif "feedback" in reasons:
            expected = Kind.FEEDBACK
        elif reasons and name not in NOT_BOUNCE:
            expected = Kind.BOUNCE
        else:
            continue
        if (kind := classify(full(data)).kind) is not expected:
            wrong.append((name, kind))
    assert wrong == []


def test_sisimai_vacation_replies_are_auto_replies_from_headers_alone(
    sisimai_bounces: list[tuple[str, bytes]], sisimai_expected: dict[str, set[str]]
) -> None:
    vacations = [
        data for name, data in sisimai_bounces if "vacation" in sisimai_expected.get(name, ())
    ]
    assert len(vacations) == 5
    assert {classify(header_only(data)).kind for data in vacations} == {Kind.AUTO_REPLY}


def test_sisimai_non_bounces_are_not_bounces() -> None:
    files = corpus(SISIMAI / "maildir" / "not", "*.eml")
    verdicts = {path.name: classify(full(path.read_bytes())) for path in files}
    assert len(verdicts) == 3
    assert all(verdict.kind is not Kind.BOUNCE for verdict in verdicts.values())
    assert verdicts["is-not-bounce-01.eml"].kind is Kind.NORMAL
    assert verdicts["is-not-bounce-02.eml"].kind is Kind.NORMAL  # a mail attached as a file
    # From postmaster@ with a null return path and "email bounce notification", but it says
    # Auto-Submitted: an auto-reply, not a bounce.
    rb_issue_368 = verdicts["rb-issue-368-bug.eml"]
    assert rb_issue_368 == Verdict(Kind.AUTO_REPLY, "Auto-Submitted: auto-replied")


def people_messages() -> list[tuple[str, bytes]]:
    """Real people's mail: talon's client replies as sent, the other corpora's reply bodies
    under a customer's headers."""
    talon = CORPORA / "talon" / "fixtures"
    messages = [(path.name, path.read_bytes()) for path in corpus(talon, "**/*.eml")]
    bodies = corpus(CORPORA / "github_email_reply_parser" / "emails", "*.txt")
    bodies += corpus(talon / "signature" / "emails", "**/*_body")
    bodies += corpus(talon / "html_replies", "*.html")
    for path in bodies:
        text = path.read_text(encoding="utf-8", errors="replace")
        content = "text/html" if path.suffix == ".html" else "text/plain"
        data = raw(f"Subject: Re: Where is my order?\nContent-Type: {content}; charset=utf-8", text)
        messages.append((path.name, data))
    return messages


def test_people_corpora_have_no_false_positives() -> None:
    messages = people_messages()
    assert len(messages) == 13 + 22 + 7 + 9
    flagged = [
        (name, verdict)
        for name, data in messages
        for verdict in (classify(full(data)), classify(header_only(data)))
        if verdict.automated
    ]
    assert flagged == []


def test_stalwart_messages_are_people_or_a_list() -> None:
    """Old clients, RFC examples and malformed MIME: no false report, auto-reply or sender."""
    files = corpus(CORPORA / "stalwart_mail_parser", "**/*.eml")
    flagged = {
        path.relative_to(CORPORA).as_posix(): classify(full(path.read_bytes())).kind
        for path in files
    }
    flagged = {name: kind for name, kind in flagged.items() if kind is not Kind.NORMAL}
    assert flagged == {"stalwart_mail_parser/eml/thirdparty/014.eml": Kind.LIST}
