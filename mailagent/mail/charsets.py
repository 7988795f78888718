"""Bytes to text when mail lies about its charset: declared labels first, then detection among
the charsets mail is really written in. Used for bodies and for RFC 2047 header words alike."""

from __future__ import annotations

import codecs

import charset_normalizer

# Labels that mail uses but Python does not know, or knows as a narrower charset than the one
# senders actually use under that label (as browsers do, a superset decodes more real mail).
_CHARSET_ALIASES = {
    "unicode-1-1-utf-7": "utf-7",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "x-mac-roman": "mac-roman",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "big5": "big5hkscs",
}
# What charset-normalizer may guess: charsets that mail is really written in. Left free, it picks
# DOS and Arabic code pages for short Western text.
_PLAUSIBLE = [
    "utf_8", "cp1252", "iso8859_15", "cp1250", "iso8859_2", "cp1251", "koi8_r", "koi8_u",
    "iso8859_5", "cp1253", "iso8859_7", "cp1254", "iso8859_9", "cp1255", "iso8859_8", "cp1256",
    "cp1257", "iso8859_13", "cp874", "cp932", "euc_jp", "iso2022_jp", "gb18030", "big5hkscs",
    "cp949",
]  # fmt: skip

def decode(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Text and, when the declared charset did not fit, a note of what was done instead."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), None
    codec = _codec(charset)
    if codec == "utf-16":
        codec = _utf16_order(data)
    if codec:
        try:
            return data.decode(codec), None
        except UnicodeError:
            if codec.startswith("utf-16"):  # never a wrong label, only damaged bytes
                return data.decode(codec, errors="replace"), f"damaged {charset} text"
            problem = f"bytes are not {charset}"
    elif charset:
        problem = f"unknown charset {charset!r}"
    else:
        try:
            return data.decode("ascii"), None
        except UnicodeDecodeError:
            problem = "8-bit text without a charset"
    guess = _detect(data)
    if guess:
        return data.decode(guess), f"{problem}, decoded as {guess}"
    return data.decode("utf-8", errors="replace"), f"{problem}, decoded as utf-8 with replacements"


def clean(text: str) -> str:
    """Without NULs and lone surrogates (UTF-7 can make them): neither is text, and databases
    refuse both."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def _codec(charset: str | None) -> str | None:
    """Python's name for a charset label; None for labels it does not know or that are not text
    encodings at all ("base64", "rot13", "undefined" are codecs too)."""
    if not charset:
        return None
    charset = charset.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(_CHARSET_ALIASES.get(charset, charset)).name
        "a".encode(name)  # raises for the codecs that are not text encodings
    except (LookupError, ValueError):  # ValueError: a NUL in the label; UnicodeError is one too
        return None
    return name


def _utf16_order(data: bytes) -> str:
    """UTF-16 without a byte order mark: Latin text has its zero bytes first when big-endian."""
    sample = data[:512]
    return "utf-16-be" if sample[::2].count(0) > sample[1::2].count(0) else "utf-16-le"


def _detect(data: bytes) -> str | None:
    """UTF-8 when the bytes are valid UTF-8, else charset-normalizer's guess, with cp1252 first
    among equally good guesses: it is what most mislabelled Western mail is written in."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    results = charset_normalizer.from_bytes(data, cp_isolation=_PLAUSIBLE)
    best = results.best()
    if best is None:
        return None
    for match in results:
        if match.chaos <= best.chaos and "cp1252" in match.could_be_from_charset:
            return "cp1252"
    return best.encoding
