"""Customer secrets taken out of text before it reaches traces and logs (DESIGN invariant 6).

Customers paste card numbers, passwords and API keys into support mail, and traces keep whole
prompts. Each secret's value is replaced by `[REDACTED:<kind>]`, its label ("password:") is kept so
a trace still reads. Ordinary numbers stay: order ids, invoice numbers, amounts, dates and phone
numbers are what a rep needs when reading a trace. IBANs stay too: they are printed on every
invoice and are not a credential.

All patterns are flat (no nested quantifiers), so redaction stays linear on huge inputs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mailagent.needles import fold, may_match, needles

# 13-19 digits, contiguous or in the groups cards are printed in (4-4-4-4[-3], Amex 4-6-5).
# Not preceded by "+" (phone numbers) nor part of a longer digit run (IBANs, tracking numbers).
_CARD = re.compile(
    r"(?<![\d+])(?<!\d[ -])"
    r"(?:\d{13,19}"
    r"|\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,4}"
    r"|\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,3}"
    r"|\d{4}[ -]\d{6}[ -]\d{4,5})"
    r"(?![ -]?\d)"
)
_CVV = re.compile(
    r"\b(?:cvv2?|cvc2?|csc|cvn|security code|card code|card verification (?:code|value)"
    r"|kartenpr(?:ü|ue|u)fnummer|pr(?:ü|ue|u)fziffer|c(?:ó|o)digo de seguridad)\b"
    r"[\s:=#-]{0,3}(?:is\s|ist\s|es\s)?(?P<v>\d{3,4})\b",
    re.IGNORECASE,
)
_PASSWORD_WORD = r"(?:password|passwort|kennwort|contrase(?:ñ|n)a|mot de passe|senha|passcode|pwd|pw)"
# "password: X", "Passwort = X", "pw: 'X'": whatever follows the label is the value.
_PASSWORD_LABEL = re.compile(
    rf"\b{_PASSWORD_WORD}\b[\s\"']{{0,2}}[:=]\s{{0,3}}"
    r"(?:[\"'“‘](?P<q>[^\"'”’\n]{1,64})[\"'”’]|(?P<v>[^\s\"'“‘]{1,64}))",
    re.IGNORECASE,
)
# "my password is X", "das Passwort ist X": prose, so the value must look like a password.
_PASSWORD_PROSE = re.compile(
    rf"\b{_PASSWORD_WORD}\s(?:is|was|ist|war|lautet|es|era|est|(?:é|e)tait)\s(?:now\s|jetzt\s|currently\s)?"
    r"(?:[\"'“‘](?P<q>[^\"'”’\n]{1,64})[\"'”’]|(?P<v>[^\s\"'“‘]{4,64}))",
    re.IGNORECASE,
)
_NOT_A_PASSWORD = frozenset(
    "not too wrong incorrect invalid expired correct reset changed forgotten required missing empty "
    "blank weak strong same different still now also definitely being the a an and or but for to of "
    "in on with my your our their it this that ok fine protected manager field change recovery hint "
    "policy requirements length please doesn't isn't won't can't none unknown below above attached "
    "nicht falsch korrekt abgelaufen vergessen incorrecta caducada olvidada oublié".split()
)
_TOKENS = re.compile("|".join(    # one alternation: one scan of the text instead of ten
    f"(?:{p})"
    for p in (
        r"\bsk-(?:proj-|live-|test-|ant-|svcacct-)?[A-Za-z0-9_-]{16,}",
        r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
        r"\bgh[pousr]_[A-Za-z0-9]{30,}",
        r"\bgithub_pat_[A-Za-z0-9_]{30,}",
        r"\bglpat-[A-Za-z0-9_-]{20,}",
        r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"\bAIza[0-9A-Za-z_-]{35}",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
        r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----[\s\S]{0,10000}?-----END [A-Z ]{0,20}PRIVATE KEY-----",
    )
))
_BEARER = re.compile(r"\b(?:Bearer|Basic|Token)\s{1,3}(?P<v>[A-Za-z0-9._~+/=-]{16,})")
_LABELLED_TOKEN = re.compile(
    r"\b(?:api[_ -]?key|apikey|access[_ -]?token|auth[_ -]?token|refresh[_ -]?token|secret[_ -]?key"
    r"|client[_ -]?secret|private[_ -]?key|token|secret|key)\b[\"']?\s{0,3}(?:is\s|[:=])\s{0,3}[\"']?"
    r"(?P<v>[A-Za-z0-9_\-./+=]{20,})",
    re.IGNORECASE,
)
_CODE = re.compile(
    r"\b(?:code|pin|passcode|otp|tan|c(?:ó|o)digo)\b\s{0,3}"
    r"(?:is\s|was\s|ist\s|lautet\s|es\s)?[:=#]?\s{0,3}(?P<v>\d{4,8})\b",
    re.IGNORECASE,
)
# Words before "code" that make it an ordinary reference rather than a one-time code.
_WORD_BEFORE = re.compile(r"(\w+)\W{0,3}$")
_NOT_A_CODE = frozenset(
    "error status http response exit postal zip area country promo discount coupon voucher product "
    "item tracking reference order customer client source sort bank swift routing tax vat dial qr bar "
    "colour color iso region".split()
)
_SECRET_KEYS = {
    "password": "password", "passwd": "password", "pwd": "password", "passwort": "password",
    "secret": "token", "clientsecret": "token", "apikey": "token", "accesstoken": "token",
    "refreshtoken": "token", "authtoken": "token", "token": "token", "authorization": "token",
    "cvv": "cvv", "cvc": "cvv", "cardnumber": "card", "pan": "card",
}

_NEEDLES = {p: needles(p) for p in (_CVV, _PASSWORD_LABEL, _PASSWORD_PROSE, _TOKENS, _BEARER, _LABELLED_TOKEN, _CODE)}

@dataclass(frozen=True)
class Secret:
    kind: str  # "card" | "cvv" | "password" | "token" | "code"
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def find_secrets(text: str) -> list[Secret]:
    """The spans of secret values in `text`, in order and not overlapping."""
    folded = fold(text)
    found = [*_cards(text), *_cvvs(text, folded), *_passwords(text, folded), *_tokens(text, folded),
             *_codes(text, folded)]
    found.sort(key=lambda s: (s.start, -s.end))
    kept: list[Secret] = []
    for secret in found:
        if not kept or secret.start >= kept[-1].end:
            kept.append(secret)
    return kept


@functools.lru_cache(maxsize=256)
def secret_kinds(text: str) -> tuple[str, ...]:
    """The kinds of secret in `text`, each once, in order. Remembered: the output check (in the
    agent's run) and the pre-send gate (at the decision) both ask it of every draft's reply."""
    return tuple(dict.fromkeys(secret.kind for secret in find_secrets(text)))


def redact(text: str) -> str:
    """`text` with every secret value replaced. Traces repeat the same strings in span after span
    and run after run (the instructions, articles returned by a search, span kinds, tool and
    model names): those are redacted once. Short and long ones are remembered apart, so the many
    short ones never push out the few long ones."""
    return _redact_long(text) if len(text) > 256 else _redact_short(text)


@functools.lru_cache(maxsize=1024)
def _redact_long(text: str) -> str:
    return _redact(text)


@functools.lru_cache(maxsize=4096)
def _redact_short(text: str) -> str:
    return _redact(text)


def _redact(text: str) -> str:
    parts: list[str] = []
    pos = 0
    for secret in find_secrets(text):
        parts += [text[pos:secret.start], f"[REDACTED:{secret.kind}]"]
        pos = secret.end
    return "".join(parts) + text[pos:] if parts else text


def redact_data(value: Any) -> Any:
    """`value` with every string in it redacted, and the whole value of a secret-named key (JSON span data)."""
    if type(value) in _SCALARS:          # most leaves of span data: one look instead of four
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_item(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_data(item) for item in value)
    return value


_SCALARS = frozenset({int, float, bool, type(None)})


def password_values(text: str) -> list[str]:
    """The passwords a customer wrote, so a draft can be checked for repeating them."""
    return list(dict.fromkeys(text[s.start:s.end] for s in _passwords(text, fold(text))))


def _redact_item(key: Any, item: Any) -> Any:
    kind = _secret_kind(key) if isinstance(key, str) else None
    if kind and isinstance(item, str) and item:
        return f"[REDACTED:{kind}]"
    return redact_data(item)


@functools.lru_cache(maxsize=1024)
def _secret_kind(key: str) -> str | None:
    """What a value under `key` is, when the key names a secret ("API-Key": "token"); keys of
    span data repeat, so each is read once."""
    return _SECRET_KEYS.get(re.sub(r"[\s_-]", "", key.lower()))


def _cards(text: str) -> list[Secret]:
    found = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if digits[0] in "23456" and luhn_valid(digits):
            found.append(Secret("card", m.start(), m.end()))
    return found


def _matches(pattern: re.Pattern[str], text: str, folded: str) -> Iterator[re.Match[str]]:
    """`pattern.finditer(text)`, skipped when `folded` (`fold(text)`) lacks every word the pattern needs."""
    return pattern.finditer(text) if may_match(_NEEDLES[pattern], folded) else iter(())


def _cvvs(text: str, folded: str) -> list[Secret]:
    return [Secret("cvv", m.start("v"), m.end("v")) for m in _matches(_CVV, text, folded)]


def _passwords(text: str, folded: str) -> list[Secret]:
    found = []
    for pattern in (_PASSWORD_LABEL, _PASSWORD_PROSE):
        for m in _matches(pattern, text, folded):
            group = "q" if m.group("q") is not None else "v"
            value = _strip_value(m.group(group))
            if value.lower() in _NOT_A_PASSWORD:
                continue
            if pattern is _PASSWORD_PROSE and group == "v" and not _looks_like_password(value):
                continue
            found.append(Secret("password", m.start(group), m.start(group) + len(value)))
    return sorted(found, key=lambda s: s.start)


def _tokens(text: str, folded: str) -> list[Secret]:
    found = [Secret("token", m.start(), m.end()) for m in _matches(_TOKENS, text, folded)]
    found += [Secret("token", m.start("v"), m.end("v")) for m in _matches(_BEARER, text, folded)]
    for m in _matches(_LABELLED_TOKEN, text, folded):
        value = m.group("v")
        if re.search(r"\d", value) and re.search(r"[A-Za-z]", value) and "://" not in value:
            found.append(Secret("token", m.start("v"), m.end("v")))
    return found


def _codes(text: str, folded: str) -> list[Secret]:
    found = []
    for m in _matches(_CODE, text, folded):
        before = _WORD_BEFORE.search(text, max(0, m.start() - 24), m.start())
        if before is None or before.group(1).lower() not in _NOT_A_CODE:
            found.append(Secret("code", m.start("v"), m.end("v")))
    return found


def _strip_value(value: str) -> str:
    """Sentence punctuation after a password is not part of it."""
    return value.rstrip(".,;:)") or value


def _looks_like_password(value: str) -> bool:
    """A word after "my password is" is a password only if it has a digit, a symbol or inner capitals."""
    return any(c.isdigit() or not c.isalnum() for c in value) or any(c.isupper() for c in value[1:])
