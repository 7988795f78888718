"""Redaction for traces and logs: secrets go, the numbers a rep needs to read a trace stay."""

from __future__ import annotations

from itertools import pairwise

import pytest

from mailagent.redact import (
    find_secrets,
    luhn_valid,
    password_values,
    redact,
    redact_data,
)

from .support.hang import cpu_under


@pytest.mark.parametrize(("text", "expected"), [
    ("Card: 4111 1111 1111 1111, exp 12/27", "Card: [REDACTED:card], exp 12/27"),
    ("card 4111-1111-1111-1111.", "card [REDACTED:card]."),
    ("pay with 5555555555554444 please", "pay with [REDACTED:card] please"),
    ("Amex 3782 822463 10005", "Amex [REDACTED:card]"),
    ("Visa 4222 2222 2222 2", "Visa [REDACTED:card]"),
])
def test_luhn_valid_card_numbers_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112",  # fails the Luhn check
    "timestamp 1794477840000 ms",  # 13 digits, but no card starts with 1
    "IBAN DE89 3704 0044 0532 0130 00",
    "tracking 9400 1000 0000 0000 0000 00",
    "call +49 151 2345 6789 01 or +1 415 555 2671",
    "0000 0000 0000 0000",
])
def test_other_long_numbers_are_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("password: hunter2", "password: [REDACTED:password]"),
    ("Password = 'correct horse battery'", "Password = '[REDACTED:password]'"),
    ("my password is hunter2, it worked yesterday", "my password is [REDACTED:password], it worked yesterday"),
    ("My password is Summer2024!", "My password is [REDACTED:password]"),
    ("Mein Passwort: Geheim123", "Mein Passwort: [REDACTED:password]"),
    ("das Passwort ist Sonne#42.", "das Passwort ist [REDACTED:password]."),
    ("contraseña: perro_azul_7", "contraseña: [REDACTED:password]"),
    ("mot de passe: chat-noir-9", "mot de passe: [REDACTED:password]"),
])
def test_passwords_are_redacted_and_labels_kept(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "My password is not working since the update.",
    "I forgot my password is there a way to reset it?",
    "The password is incorrect, it says.",
    "Password reset link expired.",
])
def test_sentences_about_passwords_are_kept(text: str) -> None:
    assert redact(text) == text


def test_password_values_are_what_the_customer_wrote() -> None:
    assert password_values("Hi, my password is hunter2. Passwort: 'Sonne 42'") == ["hunter2", "Sonne 42"]
    assert password_values("My password is not working.") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("cvv 123", "cvv [REDACTED:cvv]"),
    ("CVC: 4567", "CVC: [REDACTED:cvv]"),
    ("security code is 321", "security code is [REDACTED:cvv]"),
    ("verification code: 482913", "verification code: [REDACTED:code]"),
    ("my 2FA code is 120394", "my 2FA code is [REDACTED:code]"),
    ("the code 993311 did not work", "the code [REDACTED:code] did not work"),
])
def test_card_codes_and_one_time_codes_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(("text", "kind"), [
    ("key sk-proj-4f9Qb2XcLm0ZpT7rVy3KdW8s", "token"),
    ("sk_live_51Hx2abcDEF3456ghiJKL", "token"),
    ("ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "token"),
    ("AKIAIOSFODNN7EXAMPLE", "token"),
    ("xoxb-123456789012-abcdefABCDEF", "token"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlX2hlcmU", "token"),
    ("api_key=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "token"),
    ('"access_token": "ya29a0AfH6SMBx3k9Zq2LmN8pQ4rT"', "token"),
])
def test_api_keys_and_tokens_are_redacted(text: str, kind: str) -> None:
    redacted = redact(text)
    assert f"[REDACTED:{kind}]" in redacted
    assert not any(piece in redacted for piece in ("4f9Qb2", "51Hx2", "A1b2C3", "IOSFODNN", "abcdefABC",
                                                   "eyJzdWIi", "9f86d08", "ya29a0"))


@pytest.mark.parametrize("text", [
    "Order NN-1234 and invoice INV-2026-0001 were paid on 2026-11-16.",
    "Total: €1,234.56 (USD 1,339.00), VAT 20%, due 16.11.2026.",
    "Call me on +49 30 1234567 or 0151 23456789.",
    "Error code 4001 and HTTP 429, retry after 23 seconds.",
    "Postcode 10997, order 123456, customer 7781230.",
    "Our VAT number is FR47852319604.",
    "Business plan, 600 req/min, 40 GB, 5 seats since 1 December.",
    "The key is in the drawer, the token of appreciation arrived.",
])
def test_ordinary_text_and_numbers_are_kept(text: str) -> None:
    assert redact(text) == text


def test_redact_data_walks_json_like_values() -> None:
    data = {
        "input": [{"role": "user", "content": "my card is 4111 1111 1111 1111"}],
        "output": ("password: hunter2", 42, None),
        "headers": {"Authorization": "Bearer abcdefghijklmnop1234", "X-Request": "r-1"},
        "password": "hunter2",
        "usage": {"input_tokens": 120, "output_tokens": 30},
    }
    assert redact_data(data) == {
        "input": [{"role": "user", "content": "my card is [REDACTED:card]"}],
        "output": ("password: [REDACTED:password]", 42, None),
        "headers": {"Authorization": "[REDACTED:token]", "X-Request": "r-1"},
        "password": "[REDACTED:password]",
        "usage": {"input_tokens": 120, "output_tokens": 30},
    }


def test_secrets_do_not_overlap_and_come_in_order() -> None:
    text = "cvv 123, card 4111111111111111, password: pw4111111111111111"
    spans = find_secrets(text)
    assert [s.kind for s in spans] == ["cvv", "card", "password"]
    assert all(a.end <= b.start for a, b in pairwise(spans))


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


def test_huge_input_is_linear() -> None:
    for text in ("1 " * 200_000, "4" * 400_000, "password: " * 40_000, "a" * 400_000):
        with cpu_under(2.0, text[:12]):
            redact(text)
