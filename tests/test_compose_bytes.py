"""The exact bytes of composed replies, pinned: composing is tuned for speed (the pipeline builds
one per auto-sent reply), and what goes on the wire must not change with it. Only the random
parts (Message-ID, MIME boundary) are normalized; the clock is frozen."""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, EmailPolicy
from pathlib import Path

import pytest
from freezegun import freeze_time

from mailagent.mail import mime, smtp

GOLDEN = Path(__file__).parent / "data" / "compose"
LONG = ("This line is long enough that any mail writer must think about folding or encoding it, and it carries "
        "a few words of ünïcödé and an emoji 🙂 so that the body is not plain ASCII at all.")
CASES = {
    "ascii": smtp.Reply(sender="support@example.com", sender_name="Support", to=("ann@customer.example",),
                        subject="Invoice", text="Hi Ann,\n\nHere it is.\n\nBest,\nSupport", to_name="Ann",
                        in_reply_to="a1@customer.example", references=("r0@customer.example",), conversation_id=7),
    "non_ascii": smtp.Reply(sender="support@example.com", sender_name="Nimbus Süpport", to=("zoe@customer.example",),
                            subject="AW: Rückerstattung für März – dringend", text=f"Hallo Zoë,\n\n{LONG}\n\n"
                            "Grüße\r\nIhr Team", to_name="Zoë Müller", in_reply_to="u@customer.example",
                            references=tuple(f"r{i}@customer.example" for i in range(25)), conversation_id=42),
    "approved_latin1": smtp.Reply(sender="support@example.com", sender_name="Support", to=("jo@customer.example",),
                                  subject="Re: café", text="Voilà, c'est fait.", approved=True),
    "smtputf8": smtp.Reply(sender="support@example.com", sender_name="Support", to=("zoë@customer.example",),
                           subject="Frage", text="Hallo <b>&</b>", to_name="Zoë"),
    "empty_subject_long_name": smtp.Reply(sender="support@example.com", sender_name="S", to=("x@customer.example",),
                                          subject="", text="x" * 1200, to_name="Ä" * 100),
}


def _normalized(message_id: str, raw: bytes) -> bytes:
    boundary = re.search(rb'boundary="([^"]+)"', raw)
    assert boundary is not None
    return raw.replace(message_id.encode(), b"MSGID").replace(boundary.group(1), b"BOUNDARY")


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_composed_reply_is_byte_for_byte_what_it_was(name: str) -> None:
    with freeze_time("2026-11-22 09:30:00"):
        message_id, raw = smtp.compose(CASES[name])
    got = _normalized(message_id, raw)
    golden = GOLDEN / f"{name}.eml"
    assert got == golden.read_bytes()


HEADER_VALUES = ["Re: Invoice", "Re:  two  spaces", " leading", "trailing ", "=?utf-8?q?Zo=C3=AB?=", "x" * 72,
                 "x" * 73, "Rückerstattung", "a\tb", "semi; colon, comma \"quoted\" (comment) <angle> \\", "",
                 "<a@b.example> <c@d.example>", "Eve\r\nBcc: victim@example.org", "line\x0bbreak", "ünï " * 30]
ADDRESSES = [("", "ann@customer.example"), ("Ann", "ann@customer.example"), ("Doe, John", "j@c.example"),
             ('Eve "the" (x) \\', "eve@c.example"), ("Zoë Müller", "zoe@c.example"), ("=?utf-8?q?x?=", "x@c.example"),
             ("N" * 70, "long@customer.example"), ("Zoë", "zoë@c.example")]


def _stdlib(policy: EmailPolicy, name: str, value: object) -> bytes:
    msg = EmailMessage(policy=policy)
    msg[name] = value
    return msg.as_bytes()[:-2]                       # the header block's closing blank line


@pytest.mark.parametrize("policy", [SMTP, SMTPUTF8], ids=["smtp", "smtputf8"])
def test_a_header_is_written_as_the_stdlib_writes_it(policy: EmailPolicy) -> None:
    """The shortcut for plain headers writes what the policy writes, and refuses what it refuses."""
    values: list[tuple[str, object]] = [("Subject", v) for v in HEADER_VALUES] + [("References", v) for v in
                                                                                  HEADER_VALUES]
    values += [("To", [Address(n, username=a.rpartition("@")[0], domain=a.rpartition("@")[2])]) for n, a in ADDRESSES]
    values += [("From", Address(n, username=a.rpartition("@")[0], domain=a.rpartition("@")[2])) for n, a in ADDRESSES]
    for name, value in values:
        try:
            expected = _stdlib(policy, name, value)
        except ValueError:
            with pytest.raises(ValueError):
                mime.header(policy, name, value)     # type: ignore[arg-type]
            continue
        assert mime.header(policy, name, value) == expected, (name, value)  # type: ignore[arg-type]
