"""Which part of an article answers a question, and how much of the question it covers, for the
offline model (pure functions, no I/O). Bag-of-words over the article's `## ` sections: rarer
words and words in a heading weigh more, the question's own words more than its context's."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

NEARLY = 0.6                # a section this close to the best one is quoted too
_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)

# Words too common to choose an article's section by (folded and cut like `terms`).
_COMMON_WORDS = """
about after again also because before being could does doing dont each every from have having here
into just know like make many more much must need only other over same should some still such than
that their them then there these they thing this those through very want what when where which
while will with would your yours able help please thanks hello dear anything something account
nimbus notes really actually the and for you can how are our why who get has had was not but all
any its use new old now way may one two aber alle auch bitte dank danke diese dieser eine einen
einem einer geht gibt habe haben hallo kann kein keine konnen mein meine meinen mochte mochten
nicht noch oder sehr sind unser unsere warum weil wenn wie wir wird wurde was wer wo mit und der
die das den dem des ich sie ihr ihre bei nur schon fur von zum zur ademas algo como con cual cuando
desde donde esta este esto hay hola las los mas mis muy nos para pero por puedo puede que quiero
tengo tiene todo una uno unos del gracias saludos tambien the
"""
_COMMON = {w[:5] for w in _COMMON_WORDS.split()}


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def terms(text: str) -> set[str]:
    """Content words, without accents, cut to a 5-letter stem so "arrive" and "arriving" meet."""
    return {w[:5] for w in _WORDS.findall(_fold(text)) if len(w) >= 3} - _COMMON


def _sections(markdown: str) -> tuple[str, list[str]]:
    """The article's opening paragraph and its `## ` sections, without Markdown emphasis."""
    text = re.sub(r"\*\*|__|`", "", markdown)
    head, *sections = re.split(r"^## +", text, flags=re.MULTILINE)
    intro = next((b.strip() for b in re.split(r"\n\s*\n", head) if b.strip() and not b.lstrip().startswith("#")), "")
    return intro, sections


@dataclass(frozen=True)
class Sections:
    """The sections of an article that answer a question, and how much of the question's own
    words they cover (0..1, rarer words weighing more)."""

    texts: tuple[str, ...]
    coverage: float


def best_sections(markdown: str, question: str, context: str = "") -> Sections:
    """The section that answers the question (with the runner-up when it is nearly as good):
    the one sharing the most words with it, weighted by how few sections have each word (a word
    in every section says nothing), a word in the heading three times, a word of the question
    four times one of its context (a question with no word of its own, "how do I do that?", is
    asked by its context), a word of the article's title that no heading has half (the whole
    article is about it)."""
    title_line = next((line for line in markdown.splitlines() if line.startswith("# ")), "")
    _, sections = _sections(markdown)
    if not sections:                                 # a short article is its own answer
        asked = terms(question) or terms(context)
        return Sections((), len(asked & terms(markdown)) / len(asked) if asked else 0.0)
    analyzed = [(terms(s.partition("\n")[0]), terms(s)) for s in sections]
    about = terms(title_line) - set().union(*(head for head, _ in analyzed))    # named by no heading
    asked = terms(question) or terms(context)
    around = terms(context) - asked

    def weight(term: str) -> float:
        return (0.5 if term in about else 1.0) / max(1, sum(term in words for _, words in analyzed))

    def relevance(n: int) -> float:
        head, words = analyzed[n]
        return sum(weight(t) * (3 if t in head else 1) * (1 if t in asked else 0.25)
                   for t in (asked | around) & words)

    ranked = sorted(range(len(sections)), key=lambda n: (-relevance(n), n))
    # The best section is the only one whose heading names a word of the question no other heading
    # has ("upgrade" of "Upgrading ..." beside "Downgrading ..."): it alone answers.
    named = {n for n in range(len(sections))
             if any(t in analyzed[n][0] and sum(t in head for head, _ in analyzed) == 1 for t in asked)}
    chosen = ranked[:1]
    if len(ranked) > 1 and named != {ranked[0]} and relevance(ranked[1]) >= NEARLY * relevance(ranked[0]) > 0:
        chosen = sorted(ranked[:2])
    covered = set().union(*(analyzed[n][1] for n in chosen))
    total = sum(weight(t) for t in asked)
    coverage = sum(weight(t) for t in asked & covered) / total if total else 0.0
    texts = []
    for n in chosen:
        heading, _, body = sections[n].partition("\n")
        texts.append(f"{heading.strip()}:\n{body.strip()}")
    return Sections(tuple(texts), coverage)


def excerpt(markdown: str, question: str, limit: int = 1100, context: str = "") -> str:
    """The article's own words: its opening paragraph, then the section(s) that answer the
    question best, within `limit` (half as much again for two sections)."""
    intro, _ = _sections(markdown)
    found = best_sections(markdown, question, context).texts
    section = "\n\n".join(found)
    if len(found) > 1:
        limit = limit * 3 // 2
        if len(section) > limit:
            section = found[0]
    chosen = intro
    if section:
        chosen = f"{intro}\n\n{section}" if len(intro) + len(section) <= limit else section
    return chosen[:limit].rsplit("\n", 1)[0] if len(chosen) > limit else chosen
