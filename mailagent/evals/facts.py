"""Facts in a support reply: what a rep's final says that the draft did not, what a new draft must
still say, and what an article must hold.

A fact is an *atom* (a number with the word after it, an amount, an order or invoice id, a link,
an address, a menu path, a quoted UI label) or a *statement* (a sentence of the reply's body with
at least three content words). Greetings, sign-offs, quoted history and courtesy sentences
("let us know if anything is unclear") are not facts. An atom is present in a text when its
normalised form occurs there; a statement when most of its content words do (stemmed, so
"arrives" meets "arriving"): a paraphrase that keeps the substance counts, a reply that drops it
does not. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STATEMENT_COVERAGE = 0.6          # share of a statement's content words a text must have
MIN_CONTENT_WORDS = 3

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_SENTENCE_END = re.compile(r"(?:(?<=[^\W\d][.!?])|(?<=[*)\"”'][.!?]))\s+|\n+")
_GREETING = re.compile(r"^(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|hallo|liebe[rs]?|sehr geehrte[rs]?|"
                       r"guten tag|hola|estimad[oa]s?|buenos días|bonjour|cher|chère)"
                       r"(?:\s+[^\W\d_][\w.'-]*){0,4}\s*[,:!]?\s*$", re.IGNORECASE)
_SIGN_OFF = re.compile(r"^(?:best|kind|warm)?\s*(?:regards|wishes)\b|^(?:thanks|thank you|cheers|best|sincerely|"
                       r"viele grüße|beste grüße|mit freundlichen grüßen|freundliche grüße|liebe grüße|grüße|"
                       r"saludos|un saludo|atentamente|cordialement|bien à vous)\b[^\n]{0,30}$", re.IGNORECASE)
_QUOTE_HEADER = re.compile(r"^(?:on .{0,200} wrote:|am .{0,200} schrieb .{0,100}:|el .{0,200} escribió:|-{2,} ?original message)",
                           re.IGNORECASE)

_URL = re.compile(r"\bhttps?://[^\s<>\"'`)\]]+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_ID = re.compile(r"\b(?:[A-Z]{2,}(?:-\d{2,})+|[a-z]+_\d{3,})\b")
_MONEY = re.compile(r"(?:(?P<cur1>€|\$|£|EUR|USD|GBP)\s?(?P<a1>\d+(?:[.,]\d{3})*(?:[.,]\d{1,2})?))"
                    r"|(?:(?P<a2>\d+(?:[.,]\d{3})*(?:[.,]\d{1,2})?)\s?(?P<cur2>€|\$|£|EUR|USD|GBP|euros?|dollars?)\b)",
                    re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.,/-])(?P<n>\d+(?:[.,]\d+)?)(?:\s+(?P<w>[^\W\d_]{2,}))?", re.UNICODE)
_CAPITALISED = r"[A-ZÄÖÜÁÉÍÓÚÑ][\w-]*(?: [A-ZÄÖÜÁÉÍÓÚÑ&][\w-]*){0,3}"
_PATH = re.compile(rf"{_CAPITALISED}(?:\s*(?:→|->|>|»)\s*{_CAPITALISED})+")
_LABEL = re.compile(r"\*\*([^*\n]{2,60})\*\*|[“\"]([^”\"\n]{2,60})[”\"]|«([^»\n]{2,60})»|„([^“\n]{2,60})“")

STOPWORDS = frozenset(
    # en
    "a an the and or but if then so of to in on at by for with from as is are was were be been being it its this "
    "that these those there here i you he she we they me him her us them my your his our their mine yours what "
    "which who whom whose when where why how all any both each few more most other some such no nor not only own "
    "same than too very can will just do does did doing have has had having should would could may might must "
    "shall about above after again against before below between into through during out over under up down off "
    "once also yes still even get got into onto per via"
    # de
    " der die das den dem des ein eine einen einem einer und oder aber ist sind war waren sein es sie er wir ihr "
    "ich du mit von zu im in am an auf für bei aus nach wie was wenn dann auch nicht noch nur schon sehr kann "
    "können wird werden hat haben ihre ihr ihnen ihren sich so da dass als um"
    # es
    " el la los las un una unos unas y o pero es son fue ser de del al en con por para que como cuando donde "
    "su sus se lo le les ya muy puede pueden está están hay mi tu nuestro".split()
)
COURTESY = frozenset(
    "thanks thank thankyou please sorry apologies apologise apologize hope help helps helped happy glad "
    "question questions reply replying respond email mail message writing reaching reach touch contact contacting "
    "let know unclear anything else further hesitate feel free assist assistance team support day great "
    "wonderful regards welcome hear soon possible look looking forward personally colleague "
    "danke bitte gerne fragen frage antworten nachricht melden helfen hilfe "
    "gracias favor ayuda ayudar pregunta preguntas responder mensaje".split()
)


@dataclass(frozen=True)
class Fact:
    kind: str           # money | number | id | url | email | path | label | statement
    text: str           # as written
    key: str            # normalised, for matching


def fold(text: str) -> str:
    """Lower case, compatibility forms, typographic arrows and quotes made plain."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return text.replace("->", "→").replace("»", "→").replace(" > ", " → ").replace("’", "'")


def stem(word: str) -> str:
    """A five-letter stem: crude, and the same for every language, which is the point."""
    return word[:5]


def content_words(text: str) -> list[str]:
    """Stemmed words that carry meaning (no stopwords, short words, numbers, links or addresses)."""
    text = _EMAIL.sub(" ", _URL.sub(" ", text))
    return [stem(w) for w in (m.group().casefold() for m in _WORD.finditer(text))
            if len(w) > 2 and w not in STOPWORDS and not w.isdigit()]


def body(text: str) -> str:
    """The reply without its greeting line, sign-off and quoted history."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(">") or _QUOTE_HEADER.match(stripped):
            break
        kept.append(line)
    while kept and not kept[0].strip():
        kept.pop(0)
    if kept and _GREETING.match(kept[0].strip()):
        kept.pop(0)
    for index in range(len(kept) - 1, max(-1, len(kept) - 8), -1):
        if _SIGN_OFF.match(kept[index].strip()):
            kept = kept[:index]
            break
    return "\n".join(kept).strip()


def sentences(text: str) -> list[str]:
    return [s.strip(" -*•\t") for s in _SENTENCE_END.split(text) if s.strip(" -*•\t")]


def is_courtesy(words: Sequence[str]) -> bool:
    courteous = sum(1 for w in words if any(c.startswith(w) or w.startswith(c[:5]) for c in COURTESY))
    return courteous >= 0.6 * len(words)


def _money_key(match: re.Match[str]) -> str:
    amount = match.group("a1") or match.group("a2") or ""
    currency = (match.group("cur1") or match.group("cur2") or "").upper()
    currency = {"€": "EUR", "$": "USD", "£": "GBP", "EURO": "EUR", "EUROS": "EUR", "DOLLAR": "USD",
                "DOLLARS": "USD"}.get(currency, currency)
    digits = amount.replace(" ", "")
    if re.search(r"[.,]\d{1,2}$", digits):
        whole, cents = re.split(r"[.,](?=\d{1,2}$)", digits)
    else:
        whole, cents = digits, "0"
    return f"{currency} {int(re.sub(r'[.,]', '', whole) or 0)}.{int(cents):02d}"


def atoms(text: str) -> list[Fact]:
    """The atoms of a text, in order of appearance, each once."""
    found: list[tuple[int, Fact]] = []
    taken: list[tuple[int, int]] = []

    def add(match: re.Match[str], kind: str, key: str, group: int | str = 0) -> None:
        start, end = match.span(group)
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        found.append((start, Fact(kind, match.group(group).strip().rstrip(".,;:!?") or match.group(group), key)))

    for m in _URL.finditer(text):
        add(m, "url", m.group().rstrip(".,;:!?").casefold())
    for m in _EMAIL.finditer(text):
        add(m, "email", m.group().casefold())
    for m in _ID.finditer(text):
        add(m, "id", m.group().casefold())
    for m in _MONEY.finditer(text):
        add(m, "money", _money_key(m))
    for m in _NUMBER.finditer(text):
        word = m.group("w")
        key = m.group("n").replace(",", ".") + (f" {stem(word.casefold())}" if word and word.casefold() not in STOPWORDS else "")
        add(m, "number", key)
    for m in _PATH.finditer(text):
        parts = [p.strip() for p in re.split(r"\s*(?:→|->|>|»)\s*", m.group())]
        parts[0] = parts[0].split()[-1]           # "Open Settings → ...": the menu starts at "Settings"
        add(m, "path", " → ".join(fold(p) for p in parts))
    for m in _LABEL.finditer(text):
        group = next(i for i in range(1, 5) if m.group(i))
        add(m, "label", fold(m.group(group)).strip(), group)
    out: dict[str, Fact] = {}
    for _, fact in sorted(found, key=lambda pair: pair[0]):
        out.setdefault(f"{fact.kind}:{fact.key}", fact)
    return list(out.values())


def statements(text: str) -> list[Fact]:
    """Sentences of the body with enough content words that are not courtesy."""
    out: dict[str, Fact] = {}
    for sentence in sentences(text):
        words = content_words(sentence)
        if len(set(words)) >= MIN_CONTENT_WORDS and not is_courtesy(words):
            out.setdefault(" ".join(sorted(set(words))), Fact("statement", sentence, " ".join(sorted(set(words)))))
    return list(out.values())


def facts(text: str) -> list[Fact]:
    """The facts of a reply: atoms and statements of its body."""
    core = body(text)
    return [*atoms(core), *statements(core)]


class Text:
    """A text prepared for many `present` questions (its folded form and its content words)."""

    def __init__(self, text: str) -> None:
        self.folded = fold(text)
        self.words = set(content_words(text))
        self.atom_keys = {f"{a.kind}:{a.key}" for a in atoms(text)}

    def has(self, fact: Fact) -> bool:
        if fact.kind == "statement":
            wanted = set(fact.key.split())
            return len(wanted & self.words) >= STATEMENT_COVERAGE * len(wanted)
        if f"{fact.kind}:{fact.key}" in self.atom_keys:
            return True
        return fact.kind in ("url", "email", "id", "path", "label") and fact.key in self.folded


def present(fact: Fact, text: str | Text) -> bool:
    return (text if isinstance(text, Text) else Text(text)).has(fact)


def missing(wanted: Iterable[Fact], text: str | Text) -> list[Fact]:
    prepared = text if isinstance(text, Text) else Text(text)
    return [fact for fact in wanted if not prepared.has(fact)]


def added(draft: str, final: str) -> list[Fact]:
    """What the final states that the draft did not."""
    return missing(facts(final), draft)


def removed(draft: str, final: str) -> list[Fact]:
    """What the draft stated that the final dropped."""
    return missing(facts(draft), final)
