"""Recognise mail that a machine sent, so that the agent never answers it (design invariant 3).

Answering an auto-reply or a bounce starts a mail loop, answering a list writes to all of its
members, and answering ourselves is a loop by definition. `classify` is a pure function: it
decides on the headers first, because they are all the IMAP loop reads
(`mail.headers.read_headers`), and looks at the MIME structure and the text body only when it is
given a full parse.

When several kinds apply, the first in this order wins, the most specific fact first:

1. OWN: one of our addresses in From, or one of our `X-Mailagent-*` headers. A loop through
   ourselves must be caught whatever else the message looks like.
2. FEEDBACK, then BOUNCE: a report about mail that was sent (ARF abuse report; DSN or MDN).
   Mail systems mark these `Auto-Submitted` as well and send them from no-reply addresses, and
   the report is the more useful fact (a bounce says that an address is dead).
3. AUTO_REPLY: RFC 3834 `Auto-Submitted`, the vendor markers, auto-reply subjects, a null
   return path.
4. LIST: RFC 2369 and RFC 2919 list headers.
5. NO_REPLY: a sender address that says nobody reads replies, the weakest evidence.

A false positive costs a customer their answer, so prose is never evidence on its own: "my
email bounced" in a body, or a subject like "Out of office next week", stays NORMAL unless a
header backs it up. The judgement calls are commented at their rules: `X-Auto-Response-Suppress`
only supports other evidence, a no-reply sender writing for a customer named in Reply-To (a web
form) is a person, and a report forwarded inline with its machine-readable fields is a bounce.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from email.errors import NoBoundaryInMultipartDefect
from email.message import Message
from email.utils import collapse_rfc2231_value
from enum import StrEnum
from functools import cached_property

from mailagent.mail.headers import first_address, header_text


class Kind(StrEnum):
    """Who wrote a message: everything but NORMAL is a machine that must not be answered."""

    NORMAL = "normal"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    LIST = "list"
    FEEDBACK = "feedback"
    NO_REPLY = "no_reply"
    OWN = "own"


@dataclass(frozen=True)
class Verdict:
    """What `classify` decided, with the evidence, so that a person can check a decision."""

    kind: Kind
    reason: str  # the evidence, short and human readable, for logs and the review queue

    @property
    def automated(self) -> bool:
        return self.kind is not Kind.NORMAL


# Local parts and display names of the mail system itself (MAILER-DAEMON, postmaster, "Mail
# Delivery Subsystem"), bounded so that `postmaster-fan` or `jane.postmaster` do not match.
_DAEMON = re.compile(
    r"(?<![\w.-])"
    r"(?:mailer[-_. ]?daemon|post_?master|mail[-_. ]delivery[-_. ](?:sub)?system)"
    r"(?![\w-])",
    re.IGNORECASE,
)
# Subjects that MTAs put on delivery reports. Only trusted together with a daemon or null sender,
# since a customer may well write "Undeliverable invoice" or "Order delayed".
_DSN_SUBJECT = re.compile(
    r"undeliver|non-?deliver|deliver(?:y|ies)\W+(?:status|notification|fail|has failed)"
    r"|fail(?:ure|ed)\W+(?:notice|deliver)|mail\W+(?:delivery\W+)?fail"
    r"|return(?:ed|ing)\W+(?:mail|message|to sender)|could not (?:be delivered|send)"
    r"|mail system error|error sending|\bdelayed\b"
    r"|unzustellbar|non remis|non recapitabile|onbestelbaar|配信できません|配信不能",
    re.IGNORECASE,
)
# An SMTP error reply quoted in the text: "550 5.1.1 ..." or RFC 5321's "550 - Requested action
# not taken". Only trusted in mail from the mail system, since customers quote errors too.
_SMTP_ERROR = re.compile(
    r"\b[45]\d\d[ -]+(?:[45]\.\d{1,3}\.\d{1,3}\b|requested action not taken)", re.IGNORECASE
)
# The per-recipient fields of an RFC 3464 report, in a text part (or quoted: a forwarded bounce).
_DSN_FIELDS = (
    re.compile(r"^[> \t]*Final-Recipient[ \t]*:", re.IGNORECASE | re.MULTILINE),
    re.compile(
        r"^[> \t]*Action[ \t]*:[ \t]*(?:failed|delayed|delivered|relayed|expanded)\b",
        re.IGNORECASE | re.MULTILINE,
    ),
    re.compile(
        r"^[> \t]*Status[ \t]*:[ \t]*[245]\.\d{1,3}\.\d{1,3}\b", re.IGNORECASE | re.MULTILINE
    ),
)
# Amazon SES notifications delivered by SNS as e-mail: a JSON body (raw, or escaped inside an
# SNS envelope), no MIME report.
_SES_NOTIFICATION = re.compile(
    r'\\?"notificationType\\?"\s*:\s*\\?"(Bounce|Complaint|Delivery)\\?"'
)
# Microsoft's JMRP complaints are not ARF: only their subject says what they are.
_JMRP_SUBJECT = re.compile(
    r"^complaint about message from (?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]*:[0-9a-f:.]+)$",
    re.IGNORECASE,
)

# Auto-reply subject prefixes that clients write and people do not (anchored: a customer's
# "Re: Automatic reply: ..." is a human answering one).
_AUTO_REPLY_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[- ]?(?:reply|response|respons|answer)|out of office auto[- ]?reply"
    r"|automatische antwort|réponse automatique|respuesta automática|risposta automatica"
    r"|automatisch antwoord|resposta automática|autosvar|automaattinen vastaus)\s*:",
    re.IGNORECASE,
)
# Suggestive only: people write these too, so they need a header to back them up.
_AWAY_SUBJECT = re.compile(
    r"^auto:|\bout of (?:the )?office\b|\baway from (?:the |my )?office\b|\babwesenheitsnotiz\b",
    re.IGNORECASE,
)
_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoreply-From", "X-Mail-Autoreply")
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply"})

# RFC 2369 and RFC 2919, the older ezmlm `Mailing-List`, and fml's `X-MLServer`.
_LIST_HEADERS = (
    "List-Id",
    "List-Unsubscribe",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Owner",
    "List-Archive",
    "Mailing-List",
    "X-MLServer",
)

# No-reply local parts, whole or between separators: `noreply`, `dmarc-noreply`, `no-reply+x`,
# `bounces+123-abc`, but neither `replyguy` nor `jane.noreplyson`.
# `postmaster` is left out on purpose: it is a role mailbox that people read and write from.
_NO_REPLY = re.compile(
    r"(?:^|[-._+=])"
    r"(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|mailer[-_.]?daemon"
    r"|bounces?|notifications?)"
    r"(?:$|[-._+=])",
    re.IGNORECASE,
)
_REPORT_PARTS = (
    "message/delivery-status",
    "message/global-delivery-status",
    "message/disposition-notification",
)
_ANGLE_ADDR = re.compile(r"<([^<>]*)>")
_BODY_LIMIT = 64 * 1024  # reports put their machine-readable part near the top


def classify(
    msg: Message, *, own_addresses: Collection[str] = (), envelope_from: str | None = None
) -> Verdict:
    """Say whether a machine sent `msg` and on what evidence.

    `msg` is a compat32 message, a header-only parse or a full one. `envelope_from` is the SMTP
    envelope sender when known (`""` or `"<>"` for the null sender); otherwise the `Return-Path`
    header stands in for it.
    """
    mail = _Mail.read(msg, envelope_from)
    if reason := _own(mail, {address.strip().lower() for address in own_addresses}):
        return Verdict(Kind.OWN, reason)
    for kind, rule in _RULES:
        if reason := rule(mail):
            return Verdict(kind, reason)
    return Verdict(Kind.NORMAL, "no sign of automated mail")



@dataclass(frozen=True)
class _Mail:
    """The facts that the rules share, read once; body facts only when a rule asks."""

    msg: Message
    subject: str
    from_addr: str
    reply_to: str
    return_path: str | None  # lowercased, "" for the null sender, None when not known

    @classmethod
    def read(cls, msg: Message, envelope_from: str | None) -> _Mail:
        return cls(
            msg=msg,
            subject=header_text(msg.get("Subject")),
            from_addr=first_address(msg.get("From"))[1],
            reply_to=first_address(msg.get("Reply-To"))[1],
            return_path=_address(
                envelope_from if envelope_from is not None else msg.get("Return-Path")
            ),
        )

    @property
    def null_sender(self) -> bool:
        """RFC 5321 4.5.5 and RFC 3834 3.3: reports and auto-replies go out with `MAIL FROM:<>`
        (Sendmail writes it `<MAILER-DAEMON>`), and people's mail never does."""
        return self.return_path in ("", "mailer-daemon")

    @property
    def from_daemon(self) -> bool:
        """The mail system itself sent it, by the return path or by the From header."""
        if self.null_sender or _DAEMON.search(self.return_path or ""):
            return True
        if (value := self.msg.get("From")) is None:
            return False
        sender = header_text(value)
        return not sender.strip("<> ") or _DAEMON.search(sender) is not None  # "From: <>" too

    @property
    def report_type(self) -> str | None:
        """None for anything but a multipart/report, "" for one without a report-type."""
        if self.msg.get_content_type() != "multipart/report":
            return None
        return collapse_rfc2231_value(self.msg.get_param("report-type", "")).strip().lower()

    @cached_property
    def part_types(self) -> frozenset[str]:
        return frozenset(part.get_content_type() for part in _parts(self.msg))

    @cached_property
    def text(self) -> str:
        """The text parts, decoded loosely: only ASCII field names and codes are looked for."""
        chunks: list[str] = []
        for part in _parts(self.msg):
            if _is_text(part):
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    chunks.append(payload[:_BODY_LIMIT].decode("latin-1"))
        return "\n".join(chunks)

    @property
    def ses_notification(self) -> str | None:
        if self.msg.get("X-Amz-Sns-Message-Id") is None:
            return None
        match = _SES_NOTIFICATION.search(self.text)
        return match.group(1) if match else None


def _own(mail: _Mail, own_addresses: Collection[str]) -> str | None:
    for name, value in mail.msg.items():
        if name.lower().startswith("x-mailagent-"):
            return _evidence(name, value)
    if mail.from_addr and mail.from_addr in own_addresses:
        return f"sender {mail.from_addr} is our own address"
    return None


def _feedback(mail: _Mail) -> str | None:
    if mail.report_type == "feedback-report":
        return "multipart/report; report-type=feedback-report"
    if "message/feedback-report" in mail.part_types:
        return "message/feedback-report part"
    if header_text(mail.msg.get("X-Apple-Unsubscribe")).lower() == "true":
        return "X-Apple-Unsubscribe: true"  # Apple Mail's one-click unsubscribe request
    if _JMRP_SUBJECT.match(mail.subject):
        return f"subject {mail.subject!r}"
    if mail.ses_notification == "Complaint":
        return "Amazon SES complaint notification"
    return None


def _bounce(mail: _Mail) -> str | None:
    if mail.report_type:
        return f"multipart/report; report-type={mail.report_type}"
    if mail.report_type == "":
        return "multipart/report"
    if failed := mail.msg.get("X-Failed-Recipients"):
        return _evidence("X-Failed-Recipients", failed)
    for part_type in _REPORT_PARTS:
        if part_type in mail.part_types:
            return f"{part_type} part"
    if mail.from_daemon and _DSN_SUBJECT.search(mail.subject):
        return f"subject {mail.subject!r} from the mail system"
    if mail.from_daemon and mail.part_types & {"message/rfc822", "text/rfc822-headers"}:
        return "returned message attached by the mail system"
    if mail.from_daemon and _SMTP_ERROR.search(mail.text):
        return "SMTP error in a message from the mail system"
    # Whoever sent it: people do not type these fields, and a bounce a customer forwards inline
    # (Sisimai's lhost-sendmail-14) is still a bounce; attached as a file, it is not looked at.
    if all(field.search(mail.text) for field in _DSN_FIELDS):
        return "delivery-status fields in the body"
    if (notification := mail.ses_notification) in ("Bounce", "Delivery"):
        return f"Amazon SES {notification.lower()} notification"
    return None


def _auto_reply(mail: _Mail) -> str | None:
    auto_submitted = mail.msg.get("Auto-Submitted")
    if _says_yes(auto_submitted):
        return _evidence("Auto-Submitted", auto_submitted)
    for name in _AUTO_REPLY_HEADERS:
        if _says_yes(value := mail.msg.get(name)):
            return _evidence(name, value)
    precedence = header_text(mail.msg.get("Precedence")).lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    if _AUTO_REPLY_SUBJECT.match(mail.subject):
        return f"subject {mail.subject!r}"
    # X-Auto-Response-Suppress asks the recipient not to auto-reply to this message; it does not
    # say that the message is one. Exchange stamps it on ordinary mail too (meeting items, mail
    # through distribution lists), and Discourse, osTicket, Redmine, GLPI and Sisimai each stopped
    # trusting it alone after false positives. Outlook's own auto-replies carry it ("All") next
    # to an auto-reply subject, so here it only confirms a subject that merely suggests one.
    if mail.msg.get("X-Auto-Response-Suppress") is not None and _AWAY_SUBJECT.search(mail.subject):
        return f"subject {mail.subject!r} with X-Auto-Response-Suppress"
    if mail.null_sender:
        return "null return path <>"
    return None


def _mailing_list(mail: _Mail) -> str | None:
    for name in _LIST_HEADERS:
        if (value := mail.msg.get(name)) is not None:
            return _evidence(name, value)
    if header_text(mail.msg.get("Precedence")).lower() == "list":
        return "Precedence: list"
    return None


def _no_reply(mail: _Mail) -> str | None:
    if not _NO_REPLY.search(_local_part(mail.from_addr)):
        return None
    # A web form sends as noreply@ on behalf of the customer named in Reply-To: that is a person
    # to answer, and the answer goes to them. The exception is kept to a Reply-To at another
    # site, since notification systems reply-enable their own mail (reply+123@ at their domain).
    reply_to = mail.reply_to
    if (
        reply_to
        and not _NO_REPLY.search(_local_part(reply_to))
        and not _same_site(reply_to, mail.from_addr)
    ):
        return None
    return f"sender {mail.from_addr}"


_RULES: tuple[tuple[Kind, Callable[[_Mail], str | None]], ...] = (
    (Kind.FEEDBACK, _feedback),
    (Kind.BOUNCE, _bounce),
    (Kind.AUTO_REPLY, _auto_reply),
    (Kind.LIST, _mailing_list),
    (Kind.NO_REPLY, _no_reply),
)


def _parts(msg: Message) -> Iterator[Message]:
    """Every MIME part, but none inside an attached message: those describe some other mail."""
    yield msg
    if msg.get_content_maintype() == "multipart" and msg.is_multipart():
        for part in msg.get_payload():
            yield from _parts(part)


def _is_text(part: Message) -> bool:
    """text/plain, or a multipart without a usable boundary, which the parser keeps as text."""
    if part.is_multipart():
        return False
    if part.get_content_type() == "text/plain":
        return True
    return any(isinstance(defect, NoBoundaryInMultipartDefect) for defect in part.defects)


def _address(value: object) -> str | None:
    """The address of a path header or envelope sender, lowercased; "" for `<>`."""
    if value is None:
        return None
    text = str(value).strip()
    match = _ANGLE_ADDR.search(text)
    return (match.group(1) if match else text).strip().lower()


def _says_yes(value: object) -> bool:
    """A marker header counts unless it is absent, empty or says `no` (RFC 3834, section 5)."""
    token = header_text(value).split(";")[0].strip().lower()
    return token not in ("", "no", "false")


def _local_part(address: str) -> str:
    return address.rpartition("@")[0] or address


def _same_site(left: str, right: str) -> bool:
    a, b = left.rpartition("@")[2], right.rpartition("@")[2]
    return a == b or a.endswith(f".{b}") or b.endswith(f".{a}")


def _evidence(name: str, value: object) -> str:
    text = header_text(value)
    return f"{name}: {text if len(text) <= 60 else text[:59] + '…'}"
