"""Input that is not mail at all (an executable, an archive, random bytes) is recognised before
parsing; real mail, however malformed, is not mistaken for it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mailagent.config import DATA
from mailagent.mail.sniff import not_mail

from .corpora import corpora
from .support.mails import mail


@pytest.mark.parametrize(("raw", "reason"), [
    (Path("/bin/true").read_bytes(), "an ELF executable, not a mail message"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document, not a mail message"),
    (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive (or an Office document), not a mail message"),
    (random.Random(7).randbytes(4096), "it does not start with header fields: not a mail message"),
    (b"Hello, I need help with my invoice.\n", "it does not start with header fields: not a mail message"),
    (b"this is not\x00 an email at all \xff\xfe", "it does not start with header fields: not a mail message"),
    (b"Subject: hi\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\nFrom: a@b.example\n\nx",
     "binary data in the header block: not a mail message"),
    (b"Foo: bar\nBaz: qux\n\nbody", ("none of the header fields of a mail message (From, To, Subject, Date, "
                                    "Message-ID ...)")),
])
def test_what_is_not_mail_is_named(raw: bytes, reason: str) -> None:
    assert not_mail(raw) == reason


def test_mail_however_malformed_is_mail() -> None:
    files = [p for p in corpora().rglob("*.eml")] + sorted((DATA / "examples" / "inbox").glob("*.eml"))
    assert len(files) > 700
    assert [str(p) for p in files if not_mail(p.read_bytes())] == []
    assert not_mail(mail(1)) is None
    assert not_mail(b"From alice@example.com Sun Nov 22 09:00:00 2026\nSubject: mbox\n\nhi") is None
    assert not_mail(b"\r\nSubject: a leading blank line\r\n\r\nhi") is None
    assert not_mail(b"Subject: no body at all") is None
