"""A customer's turn as the questions in it, for the offline model (pure functions, no I/O).

Customers ask several things in one mail ("I forgot my password. And where is last month's
invoice?") and wrap them in stories that name other topics ("my old provider is shutting down,
so: how do I change my login email?"). Each question is kept with the statements just before it
(its context, which often names what "it" is), so that each one can be looked up, answered and
checked on its own, and a word in the story cannot pick the tool or the article for the question.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_QUESTIONS = 4

# Intents whose words decide even when an article seems to fit: mistaking one of these for a
# how-to question would be the expensive kind of mistake. A word negated just before ("I'm not
# asking for a refund") does not count.
RISKY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dispute", ("chargeback", "dispute", "bank to reverse", "reclamación bancaria", "rückbuchung")),
    ("refund_request", ("refund", "money back", "erstatt", "rückerstattung", "reembolso", "devolución",
                        "remboursement")),
    ("complaint", ("unacceptable", "furious", "disappointed", "terrible", "worst", "ridiculous", "lost work",
                   "compensation", "inakzeptabel", "unzufrieden", "inaceptable")),
    ("gdpr_request", ("gdpr", "art. 15", "article 15", "dsgvo", "rgpd", "data subject")),
    ("account_deletion", ("delete my account", "delete account", "close my account", "konto löschen",
                          "eliminar mi cuenta", "borrar mi cuenta")),
)
# Words of a question that asks whether something is broken on our side right now.
OUTAGE_WORDS = ("down", "outage", "not loading", "503", "is it just me", "störung", "ausfall", "caído", "caida",
                "caída", "panne")
# "Is this on your side?" asks about an outage when what it points at is one.
SIDE_WORDS = ("your side", "your end", "bei ihnen", "bei euch", "vuestra parte", "vuestro lado", "su lado")
FAILURE_WORDS = (*OUTAGE_WORDS, "nothing syncs", "not syncing", "doesn't sync", "won't load", "spinner",
                 "synchronisiert nicht", "no se sincroniza", "no cargan")
_NEGATIONS = ("not", "no", "don't", "nicht", "kein", "keine", "keinen", "ni", "sin", "pas", "without", "ohne")
_REQUEST = re.compile(r"^(please|pls|can you|could you|i need|we need|i would like|we would like|"
                      r"bitte|ich möchte|wir möchten|ich brauche|hiermit|por favor|quiero|necesito|necesitamos)\b")
_SIGN_OFF = re.compile(r"^(thanks|thank you|cheers|best|regards|kind regards|many thanks|viele grüße|"
                       r"beste grüße|mit freundlichen grüßen|danke|vielen dank|gruß|saludos|un saludo|gracias|"
                       r"muchas gracias|merci|cordialement|bien à vous)\b")
_SENTENCE = re.compile(r"(?<=[.?!])\s+(?=[^\W\d_¿¡\"'(]|[¿¡\"'(])")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")


@dataclass(frozen=True)
class Question:
    """One question of the customer's turn, with the statements just before it."""

    text: str
    context: str = ""

    @property
    def full(self) -> str:
        return f"{self.context} {self.text}".strip()


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _contains(text: str, keyword: str) -> bool:
    """Whole-word match for short keywords ("down", "503"), substring for longer stems."""
    if len(keyword) <= 4:
        return re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", text) is not None
    return keyword in text


def _negated(text: str, keyword: str) -> bool:
    """Every occurrence of the keyword has a negation in the four words before it."""
    spots = [m.start() for m in re.finditer(re.escape(keyword), text)]
    if not spots:
        return False
    return all(any(w.strip(",.;:") in _NEGATIONS or w.endswith("n't") for w in text[:at].split()[-4:]) for at in spots)


def mentions(text: str, keyword: str) -> bool:
    """The text uses the keyword, and not only as "not <keyword>"."""
    folded = fold(text)
    return _contains(folded, keyword) and not _negated(folded, keyword)


def risky_intent(text: str) -> str | None:
    return next((intent for intent, words in RISKY_WORDS if any(mentions(text, w) for w in words)), None)


def asks_about_outage(question: Question) -> bool:
    """The question itself (not the story around it) asks whether something is down, or whether
    the failure its context describes is on our side."""
    if any(mentions(question.text, w) for w in OUTAGE_WORDS):
        return True
    return any(mentions(question.text, w) for w in SIDE_WORDS) and any(mentions(question.full, w)
                                                                       for w in FAILURE_WORDS)


def _lines(body: str) -> list[str]:
    """The lines that carry content, a wrapped sentence joined again: no greeting, no sign-off
    and the name below it, no quoted text."""
    joined: list[str] = []
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith(">"):
            continue
        if line and joined and joined[-1] and not joined[-1].endswith((".", "?", "!", ":")) \
                and not _LIST_ITEM.match(line):
            joined[-1] = f"{joined[-1]} {line}"
        else:
            joined.append(line)
    lines = [line for line in joined if line]
    for n, line in enumerate(lines):
        if n > 0 and _SIGN_OFF.match(fold(line)) and len(line.split()) <= 4:
            lines = lines[:n]
            break
    if lines and len(lines[0].split()) <= 3 and not lines[0].endswith("?"):
        lines = lines[1:]                               # "Hi!", "Hallo,", "Dear support,"
    return lines


def sentences(body: str) -> list[str]:
    out = []
    for line in _lines(body):
        out += [s.strip() for s in _SENTENCE.split(_LIST_ITEM.sub("", line)) if s.strip()]
    return out


def _is_question(sentence: str) -> bool:
    return sentence.rstrip().endswith("?") or bool(_REQUEST.match(fold(sentence.lstrip("¿¡"))))


def split(body: str) -> list[Question]:
    """The questions of a turn, each with the statements since the previous one. A turn with no
    question at all is one question (a statement of a problem asks to solve it); statements after
    the last question are context of the last one."""
    found = sentences(body)
    questions: list[Question] = []
    context: list[str] = []
    for sentence in found:
        if _is_question(sentence):
            questions.append(Question(sentence, " ".join(context)))
            context = []
        else:
            context.append(sentence)
    if not questions:
        return [Question(" ".join(found))] if found else []
    if context:
        last = questions[-1]
        questions[-1] = Question(last.text, f"{last.context} {' '.join(context)}".strip())
    return questions
