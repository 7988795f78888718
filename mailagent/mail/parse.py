"""The full parse of a message, run in the workers: bodies, attachments, the new text of a reply.

Pure: bytes in, a frozen value out. Mail in the wild is often malformed (broken boundaries, wrong
charsets, bad base64, missing headers), so `parse` never gives up on a message that has any
content: it keeps what it can read and records what was wrong in `defects`.

The stdlib parser runs with the `compat32` policy, measured 2.8 times faster than
`policy.default`; what that policy leaves undone (RFC 2047 words folded or in an unknown charset,
raw 8-bit headers, mislabelled bodies) is done here, more leniently than the stdlib would.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from email.parser import BytesParser

from mailagent.mail.charsets import clean, decode
from mailagent.mail.headers import Raw8Bit, addresses, decode_words, msgids, parse_date
from mailagent.mail.html import (
    Rendering,
    parse_html,
    render,
    stripped_text,
    too_many_tags,
)
from mailagent.mail.quotes import Reply, history_start, split_rendering, split_reply


@dataclass(frozen=True)
class Attachment:
    """What is known of an attachment; its content is not kept (the raw message has it)."""

    filename: str | None
    content_type: str
    size: int  # decoded bytes


@dataclass(frozen=True)
class ParsedMail:
    subject: str
    from_name: str
    from_addr: str  # lowercased, "" if none
    to: tuple[str, ...]  # lowercased addresses
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    date: datetime | None  # aware, UTC
    message_id: str | None  # without brackets, as sent
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str  # the first text/plain part, or the HTML part as text when there is none
    html: str | None
    hidden_text: str  # text of hidden HTML elements: never part of `text`
    reply_text: str  # the new text of this message
    quoted_text: str
    signature: str
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]  # what was malformed, and what was done about it


class ParseError(Exception):
    """Raised only when nothing usable can be produced."""


_FOLD = re.compile(r"\r?\n|\r")
_MISSING_SEMICOLON = re.compile(r"^(\s*[\w.+-]+/[\w.+-]+)\s+(?=[\w-]+\s*=)")
_OBSOLETE_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


class _Lenient(Raw8Bit):
    """`compat32` with raw 8-bit bytes decoded (`Raw8Bit`), and more lenient with header fields:
    unfolded as RFC 5322 says (a boundary folded over two lines then matches), with the `;` that
    some mailers leave out before Content-Type parameters."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        value = _FOLD.sub("", value)
        if name.strip().lower() == "content-type":
            value = _MISSING_SEMICOLON.sub(r"\1; ", value)
        return name, value


_PARSER = BytesParser(policy=_Lenient())
_BODY_TYPES = frozenset({"text/plain", "text/html"})

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([\w.:-]{1,40})""", re.I)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def parse(raw: bytes) -> ParsedMail:
    return parse_tree(raw)[0]


def parse_tree(raw: bytes) -> tuple[ParsedMail, Message]:
    """The parse, and the compat32 tree it was read from (loop detection reads the same tree,
    so a message is parsed once)."""
    if not raw.strip():
        raise ParseError("empty message")
    defects: list[str] = []
    elided, sizes = elide_large_parts(raw)
    message = _read(elided, defects)
    headers = _Headers(message, defects)
    body = _Body(message, defects, sizes)
    from_name, from_addr = next(iter(headers.addresses("from")), ("", ""))
    reply = body.reply(sender=from_name or from_addr)
    return ParsedMail(
        subject=headers.text("subject"),
        from_name=from_name,
        from_addr=from_addr,
        to=headers.mailboxes("to"),
        cc=headers.mailboxes("cc"),
        reply_to=headers.mailboxes("reply-to"),
        date=parse_date(headers.value("date")),
        message_id=next(iter(msgids(headers.value("message-id"))), None),
        in_reply_to=msgids(headers.value("in-reply-to")),
        references=msgids(headers.value("references")),
        text=body.text,
        html=body.html,
        hidden_text=body.hidden,
        reply_text=reply.text,
        quoted_text=reply.quoted,
        signature=reply.signature,
        attachments=tuple(body.attachments),
        defects=tuple(dict.fromkeys(defects)),
    ), message


# --- bounded cost -------------------------------------------------------------------------------
# The stdlib parser keeps every line of a body and joins them (a 50 MB attachment cost 450 MB and
# 16 s); what we need of an attachment is its size. Base64 runs of `ELIDE_AT` bytes or more are
# replaced, before parsing, by a short token whose decoded size is kept aside.

ELIDE_AT = 1_000_000
_B64_LINE = re.compile(rb"^[A-Za-z0-9+/]+={0,2}\r?$", re.MULTILINE)
_ELIDED = b"mailagent-elided-"


def elide_large_parts(raw: bytes) -> tuple[bytes, dict[bytes, int]]:
    """`raw` with every run of base64 lines of `ELIDE_AT` bytes or more replaced by a token (itself
    base64), and the decoded size behind each token. Linear in the size of `raw`."""
    if len(raw) < ELIDE_AT:
        return raw, {}
    runs: list[tuple[int, int]] = []
    start = end = -2
    for line in _B64_LINE.finditer(raw):
        if line.start() == end + 1:
            end = line.end()
            continue
        if end - start >= ELIDE_AT:
            runs.append((start, end))
        start, end = line.start(), line.end()
    if end - start >= ELIDE_AT:
        runs.append((start, end))
    pieces, sizes, pos = [], {}, 0
    for i, (a, b) in enumerate(runs):
        token = _ELIDED + str(i).encode()
        chars = (b - a) - raw.count(b"\n", a, b) - raw.count(b"\r", a, b)
        padding = raw.count(b"=", max(a, b - 4), b)
        sizes[token] = chars * 3 // 4 - padding
        pieces += [raw[pos:a], base64.b64encode(token)]
        pos = b
    return b"".join([*pieces, raw[pos:]]), sizes


def _read(raw: bytes, defects: list[str]) -> Message:
    try:
        message = _PARSER.parsebytes(raw)
        if any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in message.defects):
            # RFC 5322's obsolete syntax allows space before the colon ("Subject : hi"); the
            # stdlib takes such a line for the start of the body, and loses the headers after it.
            end = _HEADER_END.search(raw)
            head = raw[: end.start() if end else len(raw)]
            repaired, count = _OBSOLETE_FIELD.subn(rb"\1:", head)
            if count:
                defects.append("space before the colon of a header field name")
                message = _PARSER.parsebytes(repaired + raw[len(head) :])
    except RecursionError:
        # Multiparts nested thousands deep (the stdlib parser recurses): keep the body unparsed.
        defects.append("MIME parts nested too deeply; the body is kept as raw text")
        message = _PARSER.parsebytes(raw, headersonly=True)
    except Exception as exc:  # the stdlib parser is meant never to raise; if it does, give up
        raise ParseError(f"unparseable message: {exc!r}") from exc
    return message


class _Headers:
    """The top-level header fields."""

    def __init__(self, message: Message, defects: list[str]) -> None:
        self.defects = defects
        self.fields: dict[str, list[str]] = {}
        for name, value in message.items():
            self.fields.setdefault(name.strip().lower(), []).append(value)
        for name in ("From", "Date", "Message-ID"):
            if name.lower() not in self.fields:
                defects.append(f"no {name} header")

    def value(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def text(self, name: str) -> str:
        return decode_words(self.value(name) or "", self.defects)

    def addresses(self, name: str) -> list[tuple[str, str]]:
        return addresses(self.fields.get(name, []), self.defects)

    def mailboxes(self, name: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(addr for _, addr in self.addresses(name) if addr))


class _Body:
    """The readable text and HTML of a message, and its attachments."""

    def __init__(self, message: Message, defects: list[str], elided: dict[bytes, int]) -> None:
        self.defects = defects
        self.elided = elided
        self.attachments: list[Attachment] = []
        self.plain: str | None = None
        self.html: str | None = None
        for part in _walk(message):
            if not _is_container(part):
                self.add(part)  # first: decoding the content finds defects too (bad base64)
            for defect in part.defects:
                name = _CAMEL.sub(" ", type(defect).__name__.removesuffix("Defect")).lower()
                defects.append(f"{part.get_content_type()}: {name}")
        if self.html is not None and not self.html.strip():
            self.html = None
        self.rendering: Rendering | None = None
        self.text = self.plain or ""
        if self.html is not None and (tags := too_many_tags(self.html)):
            # Rendering cost grows with the tags; what is hidden cannot be told without it, so
            # none of this text is shown as the customer's words.
            defects.append(f"text/html: {tags} tags, too many to render; its text is kept apart as hidden")
            self.hidden = stripped_text(self.html)
        elif self.html is not None:
            # The HTML is read even when the plain part is the text: it can hide text that the
            # plain part does not show, and that must be known.
            soup = parse_html(self.html)
            if self.text.strip():
                self.hidden = render(soup).hidden
            else:
                self.rendering = render(soup, cut=history_start(soup))
                self.text, self.hidden = self.rendering.text, self.rendering.hidden
        else:
            self.hidden = ""

    def add(self, part: Message) -> None:
        content_type = part.get_content_type()
        if part.get_content_maintype() == "multipart":  # its boundary never came: read as text
            content_type = "text/plain"
        filename = part.get_filename()  # RFC 2231 (`filename*=`) decoded, but not RFC 2047
        if filename is not None and "=?" in filename:
            filename = decode_words(filename, self.defects)
        elif filename is not None:
            filename = clean(filename)
        if (
            part.get_content_disposition() == "attachment"
            or filename is not None
            or content_type not in _BODY_TYPES
        ):
            self.attachments.append(Attachment(filename, content_type, _size(part, self.elided)))
        elif content_type == "text/plain" and self.plain is None:
            self.plain = self.decode_text(part, content_type)
        elif content_type == "text/html" and self.html is None:
            self.html = self.decode_text(part, content_type)

    def decode_text(self, part: Message, content_type: str) -> str:
        data = part.get_payload(decode=True) or b""
        if data in self.elided:
            self.defects.append(f"{content_type}: a body of {self.elided[data]} bytes, too large to read")
            return ""
        charset = part.get_content_charset()
        if charset is None and content_type == "text/html":
            declared = _META_CHARSET.search(data[:4096])
            charset = declared[1].decode("ascii").lower() if declared else None
        text, defect = decode(data, charset)
        if defect:
            self.defects.append(f"{content_type}: {defect}")
        return clean(text).replace("\r\n", "\n").replace("\r", "\n")

    def reply(self, sender: str) -> Reply:
        if self.rendering is None:
            return split_reply(self.text, sender_name=sender)
        return split_rendering(self.rendering, sender_name=sender)


def _walk(message: Message) -> Iterator[Message]:
    """Every part in order, containers included; an attached message is not entered (it is an
    attachment, not part of this message's body)."""
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        if _is_container(part):
            stack.extend(reversed(part.get_payload()))


def _is_container(part: Message) -> bool:
    return part.is_multipart() and part.get_content_maintype() != "message"


def _size(part: Message, elided: dict[bytes, int]) -> int:
    payload = part.get_payload(decode=True)
    if payload is not None:
        return elided.get(payload, len(payload))
    # An attached message, which the parser split up. Writing it back out to measure it is slow
    # and, for malformed messages, fails in the stdlib: add up its fields and contents instead,
    # with CRLF line ends (its MIME framing is left out).
    size, stack = 0, list(part.get_payload())
    while stack:
        sub = stack.pop()
        size += sum(len(name) + len(value) + 4 for name, value in sub.raw_items()) + 2
        if sub.is_multipart():
            stack.extend(sub.get_payload())
        else:
            data = sub.get_payload(decode=True) or b""
            size += elided.get(data, len(data))
    return size


