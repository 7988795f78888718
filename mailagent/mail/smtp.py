"""Compose a threaded reply, and hand it to an SMTP server knowing exactly how far it got.

The send is split into its SMTP phases. Anything that fails before the message data is sent
certainly did not deliver, so it may be retried; a 5xx answer is final; but a connection lost
while the data is in flight leaves the outcome unknown, and that is reported as such (a human
decides), never retried blindly: a duplicate reply is worse than a late one.
"""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.policy import SMTP as SMTP_POLICY
from email.policy import SMTPUTF8 as SMTPUTF8_POLICY
from email.utils import format_datetime, make_msgid
from enum import StrEnum

import aiosmtplib

from mailagent.config import Smtp, secret
from mailagent.mail import mime

MAX_REFERENCES = 20
_RE_PREFIX = ("re:", "aw:", "sv:", "antw:", "r:", "rif:")


@dataclass(frozen=True)
class Reply:
    """What a reply says and what it answers."""

    sender: str
    sender_name: str
    to: tuple[str, ...]
    subject: str                          # the subject being answered
    text: str
    to_name: str = ""                     # the first recipient's display name (a claim: only shown)
    in_reply_to: str | None = None        # the answered message's Message-ID
    references: tuple[str, ...] = ()      # the answered message's References
    approved: bool = False                # a human approved it: not Auto-Submitted
    conversation_id: int | None = None


def reply_subject(subject: str) -> str:
    subject = subject.strip()
    return subject if subject.lower().startswith(_RE_PREFIX) else f"Re: {subject}".rstrip()


def references_chain(references: tuple[str, ...], in_reply_to: str | None) -> list[str]:
    """The parent's References plus the parent; long chains keep the root and the newest ids."""
    chain = [r for r in references if r != in_reply_to] + ([in_reply_to] if in_reply_to else [])
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1):]
    return chain


def needs_smtputf8(addresses: list[str] | tuple[str, ...]) -> bool:
    """Whether an address has a non-ASCII local part, which only SMTPUTF8 (RFC 6531) can carry.
    A non-ASCII domain alone does not: `ascii_domain` writes it as IDNA."""
    return any(not addr.rpartition("@")[0].isascii() for addr in addresses)


def ascii_domain(addr: str) -> str:
    """The address with its domain in IDNA (`zoe@bücher.example` -> `zoe@xn--bcher-kva.example`),
    which every server accepts; unchanged when the domain is ASCII or not a valid IDN."""
    local, at, domain = addr.rpartition("@")
    if not at or domain.isascii():
        return addr
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return addr


_CONTROL = dict.fromkeys(range(32), " ") | {127: " "}


def display_name(name: str) -> str:
    """A display name fit for a header: a customer's claim, so no control characters (no line
    breaks to inject headers with) and no more than 80 characters."""
    return " ".join(name.translate(_CONTROL).split())[:80]


def _address(name: str, addr: str) -> Address:
    """Built from its parts: the stdlib refuses a non-ASCII local part given as one string."""
    local, _, domain = addr.rpartition("@")
    return Address(display_name(name), username=local, domain=domain)


def text_to_html(text: str) -> str:
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    body = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f'<!DOCTYPE html><html><body style="font-family: sans-serif">{body}</body></html>'


def compose(reply: Reply) -> tuple[str, bytes]:
    """(Message-ID without brackets, RFC 5322 bytes) of the reply: text and HTML alternatives.
    Non-ASCII text in headers is written as RFC 2047 encoded words, which every server and client
    reads; only an address with a non-ASCII local part makes it an RFC 6532 message (UTF-8
    headers), sent with SMTPUTF8. Written by `mime`, byte for byte as `EmailMessage` would."""
    policy = SMTPUTF8_POLICY if needs_smtputf8([reply.sender, *reply.to]) else SMTP_POLICY
    domain = reply.sender.rsplit("@", 1)[-1]
    message_id = make_msgid(domain=domain)
    names = [reply.to_name] + [""] * (len(reply.to) - 1)
    fields: list[tuple[str, str | Address | list[Address]]] = [
        ("From", _address(reply.sender_name, reply.sender)),
        ("To", [_address(name, addr) for name, addr in zip(names, reply.to, strict=True)]),
        ("Subject", reply_subject(reply.subject)),
        ("Date", format_datetime(datetime.now(UTC))),
        ("Message-ID", message_id),
    ]
    if reply.in_reply_to:
        fields.append(("In-Reply-To", f"<{reply.in_reply_to}>"))
    if chain := references_chain(reply.references, reply.in_reply_to):
        fields.append(("References", " ".join(f"<{r}>" for r in chain)))
    if not reply.approved:
        fields.append(("Auto-Submitted", "auto-replied"))       # RFC 3834: nobody looked at it
        fields.append(("X-Auto-Response-Suppress", "All"))      # ask Exchange not to auto-answer it
    if reply.conversation_id is not None:
        fields.append(("X-Mailagent-Conversation", str(reply.conversation_id)))
    headers = [mime.header(policy, name, value) for name, value in fields]
    parts = [mime.text_part(policy, "plain", reply.text),
             mime.text_part(policy, "html", text_to_html(reply.text), mime_version=True)]
    return message_id.strip("<>"), mime.alternative(policy, headers, parts)


class Status(StrEnum):
    SENT = "sent"
    RETRY = "retry"          # certainly not delivered; try again later
    FAILED = "failed"        # the server refused for good
    UNKNOWN = "unknown"      # may have been delivered: do not resend without a human


class Phase(StrEnum):
    """How far an SMTP transaction got: what a rep needs to settle an unknown outcome."""

    CONNECT = "connect"      # TCP, greeting, EHLO, TLS, AUTH
    MAIL = "mail"            # MAIL FROM
    RCPT = "rcpt"            # RCPT TO
    DATA = "data"            # the message was being sent, or its answer awaited
    DONE = "done"            # the server answered the data


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str
    refused: dict[str, str] = field(default_factory=dict)
    phase: Phase = Phase.CONNECT
    last_reply: str = ""     # the server's last answer ("" when it gave none)


def _answer(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


class _Transcript:
    """The phase reached and the server's last answer, kept as the transaction goes."""

    def __init__(self) -> None:
        self.phase, self.last_reply = Phase.CONNECT, ""

    def at(self, phase: Phase) -> None:
        self.phase = phase

    def heard(self, response: aiosmtplib.SMTPResponse | aiosmtplib.SMTPResponseException) -> None:
        self.last_reply = f"{response.code} {response.message}".strip()

    def outcome(self, status: Status, detail: str, refused: dict[str, str] | None = None) -> Outcome:
        return Outcome(status, detail, refused or {}, self.phase, self.last_reply)


async def send(cfg: Smtp, sender: str, recipients: list[str], raw: bytes, *, deadline: float) -> Outcome:
    """One SMTP transaction, over within `deadline` seconds whatever the server does (a server
    that accepts and then stalls, or trickles its answers, cannot hold the worker)."""
    transcript = _Transcript()
    try:
        async with asyncio.timeout(deadline):
            return await _transact(cfg, sender, recipients, raw, transcript)
    except TimeoutError:
        detail = f"no complete answer within the {deadline:g} s deadline (in {transcript.phase})"
        if transcript.phase is Phase.DATA:
            return transcript.outcome(Status.UNKNOWN, f"the server stalled while it had the message: {detail}")
        return transcript.outcome(Status.RETRY, detail)


async def _transact(cfg: Smtp, sender: str, recipients: list[str], raw: bytes, t: _Transcript) -> Outcome:
    password = secret("smtp.password_env", cfg.password_env) if cfg.password_env else None
    token = secret("smtp.oauth2_token_env", cfg.oauth2_token_env) if cfg.oauth2_token_env else None

    async def oauth_token() -> str:
        return token or ""

    client = aiosmtplib.SMTP(
        hostname=cfg.host, port=cfg.port, timeout=cfg.timeout_seconds,
        use_tls=cfg.security == "ssl", start_tls=cfg.security == "starttls",
        username=cfg.user if (password or token) else None, password=password,
        oauth_token_generator=oauth_token if token else None,
    )
    utf8 = needs_smtputf8([sender, *recipients])
    encoding, options = ("utf-8", ["SMTPUTF8"]) if utf8 else ("ascii", [])
    try:
        t.heard(await client.connect())
        if utf8 and client.is_ehlo_or_helo_needed:
            await client.ehlo()                              # to know the server's extensions
        if utf8 and not client.supports_extension("smtputf8"):
            await _quietly_quit(client)
            return t.outcome(Status.FAILED, "an address has non-ASCII characters before the @, which needs "
                                            "SMTPUTF8 (RFC 6531), and this SMTP server does not offer it")
        t.at(Phase.MAIL)
        t.heard(await client.mail(sender, options=options, encoding=encoding))
        t.at(Phase.RCPT)
        refused: dict[str, str] = {}
        for rcpt in recipients:
            try:
                t.heard(await client.rcpt(rcpt, encoding=encoding))
            except aiosmtplib.SMTPRecipientRefused as exc:
                t.heard(exc)
                refused[rcpt] = _answer(exc)
        if len(refused) == len(recipients):
            temporary = any(answer.startswith("4") for answer in refused.values())
            await _quietly_quit(client)
            return t.outcome(Status.RETRY if temporary else Status.FAILED, "every recipient was refused", refused)
        t.at(Phase.DATA)
        response = await client.data(raw)
        t.heard(response)
        t.at(Phase.DONE)
        await _quietly_quit(client)
        return t.outcome(Status.SENT, f"{response.code} {response.message}", refused)
    except aiosmtplib.SMTPAuthenticationError as exc:
        t.heard(exc)
        return t.outcome(Status.FAILED, f"authentication failed (check the SMTP credentials): {_answer(exc)}")
    except aiosmtplib.SMTPResponseException as exc:
        t.heard(exc)
        status = Status.RETRY if 400 <= exc.code < 500 else Status.FAILED
        return t.outcome(status, _answer(exc))
    except (aiosmtplib.SMTPException, OSError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if t.phase is Phase.DATA:
            return t.outcome(Status.UNKNOWN, f"connection lost while the server had the message: {detail}")
        return t.outcome(Status.RETRY, detail)
    finally:
        client.close()


async def _quietly_quit(client: aiosmtplib.SMTP) -> None:
    """QUIT once the outcome is known: whatever happens to the goodbye changes nothing."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        pass
