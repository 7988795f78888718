"""Hostile mail has bounded cost: deep nesting, tag soups and huge attachments are read with a
stored defect, never a RecursionError, and without holding many copies of the message (timings
are in bench/hostile_mail.py, not here)."""

from __future__ import annotations

import base64
import tracemalloc
from email.message import EmailMessage

import pytest

from mailagent.mail import loops
from mailagent.mail.html import MAX_TAGS
from mailagent.mail.parse import ELIDE_AT, elide_large_parts, parse
from mailagent.pipeline.classify import Inspection, inspect

from .support.hostile_mail import big_attachment, nested_multipart, unclosed_divs


def test_multiparts_nested_5000_deep_parse_and_classify_without_recursion_error() -> None:
    raw = nested_multipart(5000)
    parsed = parse(raw)
    assert "MIME parts nested too deeply; the body is kept as raw text" in parsed.defects
    assert parsed.subject == "hostile" and parsed.from_addr == "alice@customer.example"
    found = classify(raw)
    assert found.kind == loops.Kind.NORMAL and found.parse_error is None and found.from_addr == "alice@customer.example"
    # ... and a reply from a mailer daemon nested as deep is still known for a bounce by its headers
    bounce = raw.replace(b"From: Alice <alice@customer.example>", b"From: MAILER-DAEMON@mx.example\r\n"
                         b"Return-Path: <>\r\nX-Failed-Recipients: bob@customer.example")
    assert classify(bounce).kind == loops.Kind.BOUNCE


def classify(raw: bytes) -> Inspection:
    """What the classify stage works out before its transaction (parse, loops, envelope)."""
    return inspect(raw, own_addresses=["support@example.com"], mailboxes={"support@example.com": "support"})


def test_a_megabyte_of_unclosed_divs_is_kept_apart_not_rendered() -> None:
    parsed = parse(unclosed_divs(1_000_000))
    assert any("too many to render" in d for d in parsed.defects)
    assert parsed.text == "" and parsed.hidden_text == "please help"


def test_html_under_the_tag_limit_is_still_rendered() -> None:
    parsed = parse(unclosed_divs(5 * MAX_TAGS // 2))
    assert parsed.text == "please help" and not any("too many" in d for d in parsed.defects)


def test_a_huge_attachment_is_measured_not_held() -> None:
    raw = big_attachment(20_000_000)      # bench/hostile_mail.py runs 50 MB
    tracemalloc.start()
    try:
        found = classify(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.parsed is not None and found.kind == loops.Kind.NORMAL
    assert [(a.filename, a.size) for a in found.parsed.attachments] == [("dump.bin", 20_000_000)]
    assert found.parsed.text.strip() == "See the attached dump."
    assert peak < 1.2 * len(raw), f"{peak / 1e6:.0f} MB for a {len(raw) / 1e6:.0f} MB message"


@pytest.mark.parametrize("size", [ELIDE_AT, ELIDE_AT + 1, ELIDE_AT + 2, 3 * ELIDE_AT + 7])
def test_elided_parts_keep_their_exact_size(size: int) -> None:
    raw = big_attachment(size)
    elided, sizes = elide_large_parts(raw)
    assert len(elided) < 10_000 and list(sizes.values()) == [size]
    assert [a.size for a in parse(raw).attachments] == [size]


def test_small_parts_are_left_alone_and_a_huge_text_body_is_a_defect() -> None:
    raw = big_attachment(100_000)
    assert elide_large_parts(raw) == (raw, {})
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@customer.example", "support@example.com", "log"
    message.set_content(("line of log " * 200_000).encode(), maintype="text", subtype="plain", cte="base64")
    parsed = parse(message.as_bytes())
    assert parsed.text == "" and any("too large to read" in d for d in parsed.defects)
    assert base64.b64decode(elide_large_parts(message.as_bytes())[0].split(b"\n\n")[-1]).startswith(b"mailagent-")
