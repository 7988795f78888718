"""Amounts written in words ("one thousand six hundred euros", "mille six cents euros") as digits,
so the output check compares them with what ran like any other amount.

English, German, Spanish and French cardinals up to the millions, on text already folded by
`guardrails` (lowercase is not required; accents removed). Only numbers followed by a currency
word are rewritten: "one of our agents" stays as it is. Linear: each currency word looks back over
a bounded number of words.
"""

from __future__ import annotations

import re

_UNITS: dict[str, int] = {}
for _words, _start in (
    ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
     "seventeen eighteen nineteen", 0),
    ("null eins zwei drei vier funf sechs sieben acht neun zehn elf zwolf dreizehn vierzehn funfzehn sechzehn "
     "siebzehn achtzehn neunzehn", 0),
    ("cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince dieciseis "
     "diecisiete dieciocho diecinueve", 0),
    ("zero un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize dix-sept "
     "dix-huit dix-neuf", 0),
):
    _UNITS.update({w: i + _start for i, w in enumerate(_words.split())})
_UNITS.update({"a": 1, "an": 1, "ein": 1, "eine": 1, "einen": 1, "una": 1, "une": 1, "veinte": 20})
_UNITS.update(dict(zip("twenty thirty forty fifty sixty seventy eighty ninety".split(), range(20, 100, 10))))
_UNITS.update(dict(zip("zwanzig dreissig vierzig funfzig sechzig siebzig achtzig neunzig".split(), range(20, 100, 10))))
_UNITS.update(dict(zip("treinta cuarenta cincuenta sesenta setenta ochenta noventa".split(), range(30, 100, 10))))
_UNITS.update(dict(zip("vingt trente quarante cinquante soixante".split(), range(20, 70, 10))))
_UNITS.update({"quatre-vingt": 80, "quatre-vingts": 80, "veintiuno": 21, "veintiun": 21, "veintidos": 22,
               "veintitres": 23, "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26, "veintisiete": 27,
               "veintiocho": 28, "veintinueve": 29})
_UNITS.update(dict(zip("doscientos trescientos cuatrocientos quinientos seiscientos setecientos ochocientos "
                       "novecientos".split(), range(200, 1000, 100))))
_HUNDRED = {"hundred", "hundert", "cien", "ciento", "cent", "cents"}
_BIG = {"thousand": 1000, "tausend": 1000, "mil": 1000, "mille": 1000, "million": 10**6, "millions": 10**6,
        "millionen": 10**6, "millon": 10**6, "millones": 10**6, "millio": 10**6}
_JOINERS = {"and", "und", "y", "et"}
_GERMAN_PART = re.compile(
    "dreizehn|vierzehn|funfzehn|sechzehn|siebzehn|achtzehn|neunzehn|zwanzig|dreissig|vierzig|funfzig|sechzig"
    "|siebzig|achtzig|neunzig|hundert|tausend|zwolf|sieben|sechs|eins|ein|zwei|drei|vier|funf|acht|neun|zehn|elf"
    "|und")
_CURRENCY = re.compile(r"(?<![\w-])(?:euros?|eur|dollars?|dolares|dolar|usd|pounds?|libras?|gbp|franken|francs?|francos?|chf)(?![\w-])", re.IGNORECASE)
_WORD = re.compile(r"[\w-]+")
_LOOK_BACK = 12  # words


def _tokens(word: str) -> list[str] | None:
    """A word as number tokens: itself, its hyphenated parts, or the parts of a German compound."""
    word = word.lower().replace("ß", "ss")
    if word in _UNITS or word in _HUNDRED or word in _BIG or word in _JOINERS:
        return [word]
    if "-" in word:
        parts: list[str] = []
        for piece in word.replace("quatre-vingt", "quatre_vingt").split("-"):
            found = _tokens(piece.replace("quatre_vingt", "quatre-vingt"))
            if found is None:
                return None
            parts += found
        return parts
    german = _GERMAN_PART.findall(word)
    if german and "".join(german) == word:
        return german
    return None


def _value(tokens: list[str]) -> int | None:
    total, group, seen = 0, 0, False
    for token in tokens:
        if token in _JOINERS:
            continue
        if token in _UNITS:
            group += _UNITS[token]
            seen = seen or token not in ("a", "an")
        elif token in _HUNDRED:
            group = (group or 1) * 100
            seen = True
        else:
            total += (group or 1) * _BIG[token]
            group, seen = 0, True
    return total + group if seen else None


def words_to_digits(text: str) -> str:
    """`text` with every amount written in words before a currency word written in digits."""
    out: list[str] = []
    pos = 0
    for currency in _CURRENCY.finditer(text):
        words = list(_WORD.finditer(text, max(pos, currency.start() - 200), currency.start()))[-_LOOK_BACK:]
        start, tokens = None, []
        for word in reversed(words):
            found = _tokens(word.group())
            if found is None:
                break
            start, tokens = word.start(), found + tokens
        while tokens and tokens[0] in _JOINERS:  # "... and fifty euros": the "and" is not part of it
            tokens.pop(0)
            start = None if not tokens else start
        value = _value(tokens) if tokens and start is not None else None
        if value is None or start is None:
            continue
        out.append(text[pos:start])
        out.append(f"{value} ")
        pos = currency.start()
    out.append(text[pos:])
    return "".join(out)
