"""Is it mail at all? An MTA pipe or a folder of files can hand us anything: an executable, an
archive, random bytes. Such input is stored (nothing is dropped) but must never reach a model or
be answered, so it is recognised before parsing: a message starts with header fields, and its
header block is text. Pure: bytes in, a reason out."""

from __future__ import annotations

import re

# Formats someone may pipe or save by mistake, named so that a person reading the reason knows.
_SIGNATURES = (
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE document (an Outlook .msg or old Office file)"),
)
_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]{1,76}[ \t]*:")
# Fields a message from any mail program has at least one of (RFC 5322 wants From and Date).
_MAIL_FIELDS = frozenset({
    b"from", b"sender", b"to", b"cc", b"subject", b"date", b"message-id", b"received", b"return-path",
    b"delivered-to", b"x-original-to", b"reply-to", b"mime-version", b"content-type", b"in-reply-to",
    b"references",
})
# Control bytes (ESC is not one: ISO-2022-JP headers use it raw), as `bytes.translate` deletes them.
_CONTROL = bytes(sorted(frozenset(range(0x20)) - {0x09, 0x0A, 0x0D, 0x1B}))
_HEAD_LIMIT = 64 * 1024


def not_mail(raw: bytes) -> str | None:
    """Why `raw` is not an RFC 5322 message, or None when it may be one (malformed mail is still
    mail: it is parsed, leniently, and its defects kept)."""
    start = raw.lstrip(b"\r\n")
    for magic, what in _SIGNATURES:
        if start.startswith(magic) and not _FIELD.match(start):
            return f"{what}, not a mail message"
    head = re.split(rb"\r?\n\r?\n", start[:_HEAD_LIMIT], maxsplit=1)[0]
    lines = head.splitlines()
    if lines and lines[0].startswith(b"From "):          # an mbox separator line
        lines = lines[1:]
    if not lines or not _FIELD.match(lines[0]):
        return "it does not start with header fields: not a mail message"
    if len(head) - len(head.translate(None, _CONTROL)) > max(2, len(head) // 100):     # counted in C, not per byte
        return "binary data in the header block: not a mail message"
    names = {line.split(b":", 1)[0].strip().lower() for line in lines if _FIELD.match(line)}
    if not names & _MAIL_FIELDS:
        return "none of the header fields of a mail message (From, To, Subject, Date, Message-ID ...)"
    return None
