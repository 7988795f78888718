"""Header fields read fast, and the RFC 2047 and address decoding every header reader shares.

The IMAP fetch loop must not pay for a full MIME parse (about ten times the cost of the fetch
itself): it only needs a message's identity (`identity`: its Message-ID, or failing that the hash
of its bytes), read from the header block with the `compat32` policy. The envelope (sender,
subject, date, references) is read in the workers, with the full parse (`mail.parse`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime

from mailagent.mail.charsets import clean, decode

_MSGID = re.compile(r"<([^<>\s]+)>")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?=")


class Raw8Bit(Compat32):
    """`compat32`, but raw 8-bit header bytes (RFC 6532: what Gmail and Postfix with SMTPUTF8
    deliver) are read as UTF-8, or else cp1252, instead of one U+FFFD per byte."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        if not value.isascii():   # the parser keeps the raw bytes as surrogates
            data = value.encode("ascii", "surrogateescape")
            try:
                value = data.decode("utf-8")
            except UnicodeDecodeError:
                value = data.decode("cp1252", errors="replace")
        return clean(value)


_HEADER_PARSER = BytesHeaderParser(policy=Raw8Bit())
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID_FIELD = re.compile(rb"^message-id[ \t]*:((?:[^\r\n]|\r?\n[ \t])*)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Identity:
    """What makes two deliveries the same message."""

    message_id: str | None
    sha256: str

    @property
    def dedup_key(self) -> str:
        """One stored row per Message-ID; the content hash stands in when it is missing."""
        return f"id:{self.message_id}" if self.message_id else f"sha256:{self.sha256}"


@dataclass(frozen=True)
class Envelope:
    """The header fields threading, loop detection and listings use."""

    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_name: str
    from_addr: str
    reply_to: str
    subject: str
    date: datetime | None


def decode_words(value: str, defects: list[str] | None = None) -> str:
    """RFC 2047 words decoded, even folded in two or in a wrong charset; whitespace collapsed.
    What was wrong is added to `defects` when given."""
    defects = [] if defects is None else defects
    value = _ENCODED_WORD.sub(_join_folded_word, value)
    try:
        chunks = decode_header(value)
    except HeaderParseError:
        defects.append(f"undecodable encoded word in {value[:60]!r}")
        return " ".join(value.split())
    pieces: list[str] = []
    was_encoded = False
    for data, charset in chunks:
        encoded = charset is not None
        if isinstance(data, str):
            text = data
        else:
            text, defect = decode(data, charset.split("*")[0] if charset else None)
            if defect:
                defects.append(f"encoded word in {value[:60]!r}: {defect}")
        # As the stdlib does: a space between encoded and plain text, unless one is there.
        if pieces and encoded != was_encoded and not text[:1].isspace():
            if not pieces[-1][-1:].isspace():
                pieces.append(" ")
        pieces.append(text)
        was_encoded = encoded
    return clean(" ".join("".join(pieces).split()))


def _join_folded_word(match: re.Match[str]) -> str:
    """A base64 word that folding cut in two, made whole again (in a Q word the space left by
    unfolding is harmless: whitespace is collapsed in the end)."""
    word = match[0]
    return "".join(word.split()) if word.split("?", 3)[2] in "bB" else word


def header_text(value: object) -> str:
    return "" if value is None else decode_words(str(value))


def addresses(values: list[str], defects: list[str] | None = None) -> list[tuple[str, str]]:
    """(display name, lowercased address) of each mailbox, read before the display names are
    decoded so that an encoded comma cannot split one. A bare word without an `@` is a name
    ("From: Whomever"), not an address."""
    found = []
    for display, addr in getaddresses(values):
        if not display and "@" not in addr:
            display, addr = addr, ""
        if display or addr:
            found.append((decode_words(display, defects), addr.strip().lower()))
    return found


def msgids(value: object) -> tuple[str, ...]:
    """All `<id>` tokens of a Message-ID, In-Reply-To or References header: in order, without
    brackets, duplicates dropped, otherwise exactly as sent (ids are compared verbatim)."""
    if value is None:
        return ()
    found = _MSGID.findall(str(value))
    if not found:
        bare = str(value).strip()
        return (bare,) if bare and " " not in bare and "@" in bare else ()
    seen: dict[str, None] = {}
    for item in found:
        seen.setdefault(item, None)
    return tuple(seen)


def first_address(value: object) -> tuple[str, str]:
    """(display name, lowercased address) of the first mailbox in an address header."""
    if value is None:
        return "", ""
    return next(((name, addr) for name, addr in addresses([str(value)]) if addr), ("", ""))


def parse_date(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def read_headers(raw: bytes) -> Message:
    """The header block only, as a compat32 `Message`. The body is cut off before parsing: the
    header parser would otherwise still split every line of it."""
    end = _BLANK_LINE.search(raw)
    return _HEADER_PARSER.parsebytes(raw[: end.end()] if end else raw)


def identity(raw: bytes) -> Identity:
    """The Message-ID field (unfolded) found in the header block, without the cost of a header
    parser: this runs in the IMAP fetch loop for every message."""
    end = _BLANK_LINE.search(raw)
    field = _MESSAGE_ID_FIELD.search(raw, 0, end.start() if end else len(raw))
    ids = msgids(field.group(1).decode("ascii", "replace")) if field else ()
    return Identity(ids[0] if ids else None, hashlib.sha256(raw).hexdigest())


def envelope(raw: bytes) -> Envelope:
    headers = read_headers(raw)
    from_name, from_addr = first_address(headers.get("From"))
    _, reply_to = first_address(headers.get("Reply-To"))
    return Envelope(
        in_reply_to=msgids(headers.get("In-Reply-To")),
        references=msgids(headers.get("References")),
        from_name=from_name,
        from_addr=from_addr,
        reply_to=reply_to,
        subject=header_text(headers.get("Subject")),
        date=parse_date(headers.get("Date")),
    )
