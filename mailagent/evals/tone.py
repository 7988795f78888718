"""A lexical estimate of a reply's tone, 0 (hostile) to 1 (courteous), for when no model judges it.

It counts what a reader notices first: blame and condescension ("as I already said", "you should
have"), dismissive or rude words, shouting (words in capitals, "!!"), and courtesy (greeting,
thanks, apology, an offer to help), in English, German and Spanish. It cannot hear sarcasm or
warmth without those words; the reason it gives names what it counted. Pure, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RUDE = re.compile(
    r"\b(?:as (?:i|we) (?:already |have already )?(?:said|told you|explained|mentioned)|you should have|"
    r"obviously|clearly you|read the (?:manual|docs|faq)|calm down|not our (?:problem|fault)|your (?:own )?fault|"
    r"stop (?:emailing|writing)|we can'?t help you|that'?s (?:not )?(?:our|my) problem|stupid|ridiculous|"
    r"nonsense|whatever|deal with it|figure it out|"
    r"wie (?:ich|wir) (?:bereits|schon) (?:sagte|gesagt|schrieb|erklärt)|selbst schuld|nicht unser problem|"
    r"lesen sie (?:doch )?die anleitung|como ya (?:le )?(?:dije|dijimos|expliqué)|no es nuestro problema|"
    r"es su culpa)\b",
    re.IGNORECASE,
)
_POLITE = re.compile(
    r"\b(?:thanks?|thank you|please|sorry|apologi[sz]e|apologies|happy to help|glad to|hope this helps|"
    r"let (?:me|us) know|hi|hello|dear|danke|bitte|entschuldigung|gerne|hallo|gracias|por favor|lo sentimos|"
    r"disculpe|hola|encantad[oa]s? de ayudar)\b",
    re.IGNORECASE,
)
_CAPS = re.compile(r"\b[A-ZÄÖÜ]{4,}\b")
_BANGS = re.compile(r"!{2,}")
_ACRONYMS = frozenset({"GDPR", "DSGVO", "RGPD", "HTTPS", "HTTP", "JSON", "SAML", "HTML", "IBAN", "SEPA", "VAT",
                       "UTC", "PDF", "CSV", "API", "SSO", "FAQ", "NOTE", "IMPORTANT", "EUR", "USD"})


@dataclass(frozen=True)
class Tone:
    score: float
    reason: str


def tone(text: str) -> Tone:
    rude = sorted({m.group().lower() for m in _RUDE.finditer(text)})
    polite = len(_POLITE.findall(text))
    shouting = [w for w in _CAPS.findall(text) if w not in _ACRONYMS]
    bangs = len(_BANGS.findall(text))
    score = 0.7 + min(0.3, 0.1 * polite) - 0.35 * len(rude) - (0.2 if len(shouting) >= 2 else 0.0) - 0.1 * min(bangs, 2)
    score = round(max(0.0, min(1.0, score)), 3)
    said = []
    if rude:
        said.append(f"rude or blaming: {', '.join(repr(r) for r in rude)}")
    if len(shouting) >= 2:
        said.append(f"shouting: {', '.join(shouting[:3])}")
    if bangs:
        said.append(f"{bangs}x '!!'")
    said.append(f"{polite} courtesy marker(s)")
    return Tone(score, "; ".join(said))
