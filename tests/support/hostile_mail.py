"""Hostile messages that cost a naive parser dearly: deep nesting, huge tag soups, huge attachments."""

from __future__ import annotations

import os
from email.message import EmailMessage

HEAD = (b"From: Alice <alice@customer.example>\r\nTo: support@example.com\r\nSubject: hostile\r\n"
        b"Message-ID: <hostile@customer.example>\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n")


def nested_multipart(depth: int) -> bytes:
    """Multiparts nested `depth` deep, a text part at the bottom."""
    out = [HEAD, b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n']
    out += [b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i - 1, i) for i in range(1, depth)]
    out.append(b"--b%d\r\nContent-Type: text/plain\r\n\r\nhello from the bottom\r\n" % (depth - 1))
    out += [b"--b%d--\r\n" % i for i in reversed(range(depth))]
    return b"".join(out)


def unclosed_divs(size: int) -> bytes:
    """An HTML body of about `size` bytes of unclosed `<div>`, then some text."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "alice@customer.example", "support@example.com", "divs"
    message.set_content("<html><body>" + "<div>" * (size // 5) + "please help</body></html>", subtype="html")
    return message.as_bytes()


def big_attachment(size: int, *, text: str = "See the attached dump.") -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "alice@customer.example", "support@example.com", "dump"
    message.set_content(text)
    message.add_attachment(os.urandom(size), maintype="application", subtype="octet-stream", filename="dump.bin")
    return message.as_bytes()
