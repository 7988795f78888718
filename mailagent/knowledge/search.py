"""Sync the article files into the database, and search them.

The database's full-text index (migration 0003: FTS5 on SQLite, a tsvector on PostgreSQL) only
finds candidates: the articles that contain any of the query's terms, each as a prefix, so that a
long customer email still finds something and "invoice" finds "invoices". The score is computed
here, the same way on both engines, so that a threshold means the same everywhere:

    score = 0.7 * sum(weight(term) * strength(term)) / sum(weight(term)) + 0.3 * topic share

The terms are the query's informative words (stopwords of en/de/es dropped, lightly stemmed). A
term few articles have weighs more (inverse document frequency), and one no article has weighs as
much as the rarest: "weather" counts fully against every article, "account" hardly for any. A
term's strength is 1.0 in the title or tags, 0.8 in a heading, 0.5 to 0.7 in the body by how
often. The topic share is the part of the article's title (or of its tags) that the query names,
which ranks the article that is about the question above one that mentions it. So the score,
0..1, says how much of what was asked the article covers: an unrelated question scores near 0,
and a long email scores lower than a short question on the same topic (its other words count).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any

from mailagent.knowledge import versions
from mailagent.knowledge.articles import ArticleFile, read_articles
from mailagent.store import db
from mailagent.store import knowledge as store_knowledge
from mailagent.store.models import Article


@dataclass(frozen=True)
class SyncResult:
    added: int
    updated: int
    removed: int
    unchanged: int
    kept: int = 0               # accepted suggestions that stand over their (unchanged or absent) file


def sync(url: str, directory: Path) -> SyncResult:
    """Make the `article` table match the files, in one transaction (the files are the source, so
    articles whose file is gone are removed), except where an accepted suggestion stands (see
    `versions`). Every change is kept in the article's history. Nothing is written if any file is
    invalid."""
    files = {article.id: article for article in read_articles(directory)}
    added = updated = removed = unchanged = kept = 0
    with db.session(url) as s:
        db.lock(s, "knowledge-sync")
        rows = store_knowledge.articles(s)
        latest = store_knowledge.latest_versions(s)
        for row in rows.values():
            if row.id not in files:
                if versions.stands(latest.get(row.id), None):
                    kept += 1
                else:
                    s.delete(row)
                    removed += 1
        for file in files.values():
            row, last = rows.get(file.id), latest.get(file.id)
            if versions.stands(last, file.sha256):
                kept += 1
                continue
            if row is None:
                row = Article(id=file.id, **_columns(file))
                s.add(row)
                added += 1
            elif (row.sha256, row.path) != (file.sha256, str(file.path)):
                row.sqlmodel_update(_columns(file))
                updated += 1
            else:
                unchanged += 1
                if last is not None:
                    continue
            s.flush()
            versions.record(s, row, versions.FILE, file_sha256=file.sha256)
    return SyncResult(added=added, updated=updated, removed=removed, unchanged=unchanged, kept=kept)


def _columns(file: ArticleFile) -> dict[str, Any]:
    return {"title": file.title, "tags": list(file.tags), "locale": file.locale, "updated": file.updated,
            "intent": file.intent,
            "body": file.body, "path": str(file.path), "sha256": file.sha256, "synced_at": datetime.now(UTC)}


@dataclass(frozen=True)
class Hit:
    id: str
    title: str
    locale: str
    score: float                # 0..1, see the module docstring
    body: str
    tags: tuple[str, ...]
    intent: str = ""
    _snippet: Callable[[], str] = field(default=lambda: "", repr=False, compare=False)

    @property
    def snippet(self) -> str:
        """The ~300 characters of the body that match the query best (computed when asked for:
        the agent's tool reads whole articles)."""
        return self._snippet()


def search(url: str, query: str, *, locale: str | None = None, limit: int = 5) -> list[Hit]:
    """The best articles for `query`, best first. With `locale`, relevant articles in that locale
    (score >= 0.2) come first; others follow, so a question with no article in the customer's
    language still finds, say, the English one."""
    terms = query_terms(query)
    if not terms:
        return []
    with db.reading(url) as s:
        found = store_knowledge.candidates(s, terms, _MIN_PREFIX)
        total = found[0].total if found else 0
        missing = [row.id for row in found if (row.id, row.sha256) not in _ARTICLES]
        if missing:
            for row in store_knowledge.texts(s, missing):
                _ARTICLES[(row.id, row.sha256)] = _Article(row.id, row.title, tuple(row.tags), row.locale,
                                                           row.intent, row.body)
    rows = [_ARTICLES[(row.id, row.sha256)] for row in found]
    articles = {row.id: _analyze(row.title, row.tags, row.body) for row in rows}
    scores, weights = _score(articles, terms, total)

    def rank(row: _Article) -> tuple[bool, float, str]:
        preferred = row.locale == locale and scores[row.id] >= _PREFERRED
        return not preferred, -scores[row.id], row.id

    best = sorted((row for row in rows if scores[row.id] > 0), key=rank)[:limit]
    return [Hit(id=row.id, title=row.title, locale=row.locale, score=scores[row.id], body=row.body,
                tags=row.tags, intent=row.intent, _snippet=functools.partial(articles[row.id].snippet, weights))
            for row in best]


@dataclass(frozen=True)
class _Article:
    id: str
    title: str
    tags: tuple[str, ...]
    locale: str
    intent: str
    body: str


class _Cache(OrderedDict[tuple[str, str], _Article]):
    """Articles by (id, content hash), the most recently used kept: a search reads only which
    articles match (ids and hashes) from the database, and their text when it changed."""

    LIMIT = 4096

    def __contains__(self, key: object) -> bool:
        if super().__contains__(key):
            self.move_to_end(key)  # type: ignore[arg-type]
            return True
        return False

    def __setitem__(self, key: tuple[str, str], value: _Article) -> None:
        super().__setitem__(key, value)
        while len(self) > self.LIMIT:
            self.popitem(last=False)


_ARTICLES = _Cache()


def _score(articles: Mapping[str, _Analyzed], terms: list[str],
           total: int) -> tuple[dict[str, float], dict[str, float]]:
    """Each article's score, and each term's weight; see the module docstring."""
    found = {id: {term: strength for term in terms if (strength := article.strength(term))}
             for id, article in articles.items()}
    # Every article that has a term is a candidate, so the candidates give exact document counts.
    documents = Counter(term for strengths in found.values() for term in strengths)
    weights = {term: math.log(1 + total / max(documents[term], 1)) for term in terms}
    scores = {id: 0.7 * sum(weights[t] * strength for t, strength in strengths.items()) / sum(weights.values())
              + 0.3 * articles[id].topic_share(strengths) for id, strengths in found.items()}
    return scores, weights


_PREFERRED = 0.2
_MAX_TERMS = 64         # of a long email, the first 64 distinct terms are plenty to find the topic
_MAX_WORD = 64          # longer "words" are noise (and PostgreSQL refuses them in a query)
_MIN_STEM = 4           # stemming leaves at least this many letters
_MIN_PREFIX = 3         # shorter terms ("id", "ui") match whole words only
_SNIPPET = 300


# --- text analysis ----------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower case without accents, as the full-text indexes store words ("Übersicht": "ubersicht")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


# Inflections of en/de/es, longest first; stripped only when 4 letters or more remain, and the
# rest is matched as a prefix, so "invoices" -> "invoic" finds "invoice" and "invoicing", and
# "olvidé" -> "olvid" finds "olvidaste".
_SUFFIXES = sorted({
    "s", "es", "ies", "ed", "ing", "ings", "ly", "e", "ation", "ations", "ion", "ions",   # en
    "en", "er", "ern",                                                                     # de
    "a", "o", "as", "os", "ar", "ir", "ado", "ada", "ados", "adas", "ando", "iendo",      # es
    "cion", "ciones",
}, key=len, reverse=True)


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            word = word[: -len(suffix)]
            break
    if len(word) > _MIN_STEM and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]                                    # "cancelled" -> "cancel"
    return word


_STOPWORDS = frozenset(words("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can cannot could did do does doing done down during each either else
ever every few for from further get gets getting got had has have having he her here hers herself
him himself his how however i if in into is it its itself just let like me more most much must my
myself no nor not now of off on once only or other our ours ourselves out over own please same she
should so some still such than that the their theirs them themselves then there these they this
those through to too under until up upon us very via was we were what when where which while who
whom whose why will with within without would yes yet you your yours yourself yourselves
don doesn didn isn wasn aren weren haven hasn hadn won wouldn couldn shouldn ve ll re im ive dont
cant wont hi hello hey dear thanks thank thx regards kind best cheers sincerely help question
questions want wants wanted need needs needed try tried trying know see seem seems say said tell
told ask asked make made use used using go going went come came take took give gave find found
look looking keep kept able unable always never sometimes today yesterday tomorrow really
actually maybe perhaps something anything everything nothing someone anyone thing things lot bit
one work works working worked last since ago says saying keeps asks asking tries gets makes good
uses goes comes takes gives finds shows show showing appears possible already anymore else

aber alle allem allen aller alles als am an andere anderen auch auf aus bei beim bin bis bist da
damit dann das dass dein deine dem den denn der des dich die dies diese diesem diesen dieser
dieses dir doch dort du durch ein eine einem einen einer eines er es etwas euch euer eure für
gegen gewesen hab habe haben hat hatte hatten hier hin hinter ich ihm ihn ihnen ihr ihre ihrem
ihren ihrer ist jede jedem jeden jeder jedes jetzt kann kannst können könnte kein keine keinem
keinen keiner man mein meine meinem meinen meiner mich mir mit muss müssen nach nicht nichts noch
nun nur ob oder ohne sehr sein seine sich sie sind solche soll sollte sondern sonst über um und
uns unser unsere unter viel vom von vor war waren warum was weil welche welchem welchen welcher
wenn wer werde werden wie wieder wir wird wo wollen würde zu zum zur zwar zwischen hallo guten
liebe lieber geehrte geehrter danke dank vielen grüße gruß freundlichen mfg bitte frage hilfe
helfen leider schon gerne gern mal bereits immer gestern heute funktioniert geht möchte
möchten würde hätte gibt finde finden sehe wurde worden

al algo algunas algunos ante antes como con contra cual cuando de del desde donde el ella ellas
ellos en entre era es esa esas ese eso esos esta estaba estado estamos están estar este esto
estos estoy fue fueron fui ha había han hasta hay la las le les lo los más me mi mis mucho muy
nada ni nos nosotros otra otro para pero poco por porque puede pueden puedo que qué quien se sea
ser si sin sobre solo son su sus también tengo tiene tienen todo todos tu tus un una uno unos
usted ustedes ya yo hola buenos buenas días tardes gracias saludos cordiales favor ayuda ayudar
pregunta quiero quisiera necesito podría podrían hacer hago hace encuentro encontrar funciona
veo aparece obtener
"""))


def query_terms(query: str) -> list[str]:
    """The query's informative words, stemmed, in order, each once."""
    kept = (w for w in words(query) if 1 < len(w) <= _MAX_WORD and not w.isdigit() and w not in _STOPWORDS)
    return list(dict.fromkeys(stem(w) for w in kept))[:_MAX_TERMS]


class _Field:
    """A text's words, sorted with running counts, so a term finds its words by bisection."""

    def __init__(self, found: Iterable[str]) -> None:
        counts = Counter(found)
        self.words = sorted(counts)
        self._running = list(accumulate((counts[w] for w in self.words), initial=0))
        self._informative = {w for w in self.words if len(w) > 1 and w not in _STOPWORDS}

    def span(self, term: str) -> tuple[int, int]:
        """Where the words matching `term` are: those it is a prefix of (a short term: the word
        itself), as in the full-text query."""
        start = bisect_left(self.words, term)
        if len(term) >= _MIN_PREFIX:
            return start, bisect_left(self.words, term + "\U0010ffff", start)
        return start, start + (self.words[start:start + 1] == [term])

    def count(self, term: str) -> int:
        start, end = self.span(term)
        return self._running[end] - self._running[start]

    def informative(self, term: str) -> frozenset[str]:
        """The informative words `term` matches."""
        return frozenset(self.words[slice(*self.span(term))]).intersection(self._informative)

    def share(self, matched: set[str]) -> float:
        """The share of the informative words that `matched` (some of them) is."""
        return len(matched) / max(len(self._informative), 1)


_MARKUP = re.compile(r"\*\*|__|`")
_SENTENCE_END = re.compile(r"(?<=[^\W\d][.!?])\s+")     # not after "1." of a numbered list


class _Analyzed:
    """An article's words by field, and its body's sentences by section, for snippets."""

    def __init__(self, title: str, tags: tuple[str, ...], body: str) -> None:
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        self.title = _Field(words(title))
        self.tags = _Field(words(" ".join(tags)))
        self.headings = _Field(w for line in lines if line.startswith("#") for w in words(line))
        self.body = _Field(words(body))
        self.all = _Field([*self.title.words, *self.tags.words, *self.body.words])
        # Every term the article has: its words, and their prefixes a term may be (`_Field.span`).
        # A search weighs each query term against each candidate, and most terms are absent.
        self._terms = frozenset(w[:n] for w in self.all.words for n in range(min(_MIN_PREFIX, len(w)), len(w) + 1))
        self._strengths: dict[str, float] = {}                     # both remembered per term of
        self._topics: dict[str, tuple[frozenset[str], frozenset[str]]] = {}   # `_terms`, so bounded
        self.sentences: list[tuple[int, str, list[str]]] = []      # (section, sentence, its words)
        self.section_headings: list[list[str]] = [[]]              # each section's heading words
        for line in lines:
            if line.startswith("#"):
                self.section_headings.append(words(line))
            else:
                section = len(self.section_headings) - 1
                sentences = _SENTENCE_END.split(_MARKUP.sub("", line))
                self.sentences += [(section, sentence, words(sentence)) for sentence in sentences]

    def strength(self, term: str) -> float:
        """How strongly the article is about `term`: named in the title or tags, a heading, the body.
        Remembered for the terms it has (a bounded set: its words and their prefixes)."""
        if term not in self._terms:             # most terms: one look decides
            return 0.0
        known = self._strengths.get(term)
        if known is None:
            known = self._strengths[term] = self._strength(term)
        return known

    def _strength(self, term: str) -> float:
        if self.title.count(term) or self.tags.count(term):
            return 1.0
        if self.headings.count(term):
            return 0.8
        return min(0.7, 0.4 + 0.1 * self.body.count(term))

    def topic_share(self, terms: Iterable[str]) -> float:
        """How much of what the article is about the query names: the share of the title's words
        or of the tags' words it has, whichever is larger."""
        named = [self._topic_words(term) for term in terms if term in self._terms]
        return max(self.title.share(set().union(*(title for title, _ in named))),
                   self.tags.share(set().union(*(tags for _, tags in named))))

    def _topic_words(self, term: str) -> tuple[frozenset[str], frozenset[str]]:
        """The informative words of the title and of the tags that `term` (one the article has) matches."""
        known = self._topics.get(term)
        if known is None:
            known = self._topics[term] = (self.title.informative(term), self.tags.informative(term))
        return known

    def snippet(self, weights: Mapping[str, float]) -> str:
        """The run of sentences of one section, up to ~300 characters, that covers the most query
        weight (the section's heading counts for each of its sentences). It starts at a sentence
        that matches, or at the article's start when none does."""
        if not self.sentences:
            return ""
        terms_of: dict[str, set[str]] = {}           # body word -> the query terms it matches
        for term in weights:
            start, end = self.body.span(term)
            for word in self.body.words[start:end]:
                terms_of.setdefault(word, set()).add(term)

        def matched(found: list[str]) -> set[str]:
            return set().union(*(terms_of.get(word, ()) for word in found))

        headings = [matched(heading) for heading in self.section_headings]
        found = [headings[section] | matched(sentence_words) for section, _, sentence_words in self.sentences]
        best, best_weight = "", -1.0
        for first in [n for n, terms in enumerate(found) if terms] or [0]:
            section, run, _ = self.sentences[first]
            covered = found[first]
            for (same, sentence, _), terms in zip(self.sentences[first + 1:], found[first + 1:]):
                if same != section or len(run) + 1 + len(sentence) > _SNIPPET:
                    break
                run, covered = f"{run} {sentence}", covered | terms
            weight = sum(weights[t] for t in covered)
            if weight > best_weight:
                best, best_weight = run, weight
        return best if len(best) <= _SNIPPET else best[:_SNIPPET].rsplit(" ", 1)[0] + " …"


@lru_cache(maxsize=1024)
def _analyze(title: str, tags: tuple[str, ...], body: str) -> _Analyzed:
    """Keyed by the text itself, so an edited article is analyzed afresh and nothing goes stale."""
    return _Analyzed(title, tags, body)

