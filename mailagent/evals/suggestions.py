"""Knowledge suggestions: when a rep's final states facts that no article the draft cited holds
(or the agent abstained and a rep answered), propose a new article, or an edit of the cited one,
with the cases and conversations it came from. Leads accept or reject; accepting writes a new
article version, searchable at once (see `knowledge.versions` for how it lives with the files).

What goes into an article is general knowledge only: the sentences of the rep's reply, without
greeting and sign-off, courtesy, or anything about this customer (order and invoice ids,
amounts, addresses, the customer's name). Finals that answer the same question (the same cited
article, or one new article whose sentences the rep repeats) are merged into one suggestion.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailagent.agent.offline import detect_language
from mailagent.config import Settings
from mailagent.evals import facts
from mailagent.intents import INTENTS
from mailagent.knowledge import versions
from mailagent.knowledge.articles import LOCALES
from mailagent.store import audit, db, evalcases
from mailagent.store import knowledge as store_knowledge
from mailagent.store import suggestions as store_suggestions
from mailagent.store.db import Session
from mailagent.store.models import (
    Article,
    ArticleVersion,
    Conversation,
    EvalCase,
    KnowledgeSuggestion,
    now,
)

SOURCES = ("edit", "rep-written", "flag")
PERSONAL = ("id", "email", "money")
KEPT = 0.3                          # word similarity of draft and final above which the rep edited the draft
RESTATED = 0.85                     # share of a sentence's words an article must have to say it already
_SUBJECT_PREFIX = re.compile(r"^\s*((re|aw|fwd?|wg|tr|rv)\s*:\s*|\[[^\]]*\]\s*)+", re.IGNORECASE)
_SLUG = re.compile(r"[^a-z0-9]+")


class SuggestionError(ValueError):
    """A lead's step on a suggestion that cannot apply; the message says why."""


def _knowledge(text: str, customer_name: str) -> list[str]:
    """The general sentences of a reply: no courtesy, nothing about this customer."""
    name = customer_name.split()[0].casefold() if customer_name.strip() else ""
    out = []
    for statement in facts.statements(facts.body(text)):
        personal = any(a.kind in PERSONAL for a in facts.atoms(statement.text))
        if not personal and not (name and re.search(rf"\b{re.escape(name)}\b", statement.text.casefold())):
            out.append(statement.text)
    return out


def _question(case: EvalCase) -> str:
    return f"{case.request.get('subject', '')}\n{case.request.get('latest', '')}"


def _title(case: EvalCase) -> str:
    subject = _SUBJECT_PREFIX.sub("", str(case.request.get("subject", ""))).strip()
    return subject or facts.sentences(str(case.request.get("latest", "")))[0][:80]


def _tags(case: EvalCase, limit: int = 8) -> list[str]:
    """The question's own words (without its greeting and sign-off, which may hold a name)."""
    question = f"{case.request.get('subject', '')}\n{facts.body(str(case.request.get('latest', '')))}"
    words = [w.casefold() for w in re.findall(r"[^\W\d_]{4,}", question)]
    kept = [w for w in dict.fromkeys(words) if w not in facts.STOPWORDS and not facts.is_courtesy([w])]
    return kept[:limit]


def _slug(title: str) -> str:
    plain = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return "-".join(_SLUG.sub(" ", plain).split()[:6]) or "answer"


def _locale(case: EvalCase) -> str:
    language = next((t.split(":", 1)[1] for t in case.tags if t.startswith("language:")), "")
    language = language if language in LOCALES else detect_language(_question(case))
    return language if language in LOCALES else "en"


def _cited_bodies(s: Session, cited: Sequence[str]) -> dict[str, Article]:
    return {a.id: a for a in (s.get(Article, i) for i in cited) if a is not None}


def _new_facts(statements: Sequence[str], holders: Sequence[str]) -> list[str]:
    """The statements no holder text states already."""
    prepared = [facts.Text(h) for h in holders]
    return [t for t in statements if not any(p.has(facts.Fact("statement", t, _key(t))) for p in prepared)]


def _key(text: str) -> str:
    return " ".join(sorted(set(facts.content_words(text))))


def _kept_the_draft(case: EvalCase) -> bool:
    """The rep built on the draft (so on the article it cited) rather than answering something
    else: then the new facts belong in that article; otherwise they make a new one."""
    return case.source != "rep-written" and (case.changes.get("similarity") or 0.0) >= KEPT


def _same_topic(row: KnowledgeSuggestion, statements: Sequence[str]) -> bool:
    """An open new article answers this case too: at least half of what the rep said is (nearly
    word for word) in it already. (Questions are too short to compare by their words.)"""
    held = set(facts.content_words(row.body))
    restated = [t for t in statements if (words := set(facts.content_words(t)))
                and len(words & held) >= RESTATED * len(words)]
    return 2 * len(restated) >= len(statements)


def _unique_id(s: Session, base: str, locale: str) -> str:
    taken = store_suggestions.taken_ids(s)
    candidate, n = f"{base}.{locale}", 2
    while candidate in taken:
        candidate, n = f"{base}-{n}.{locale}", n + 1
    return candidate


def _merge(row: KnowledgeSuggestion, case: EvalCase, new: Sequence[str]) -> None:
    added = _new_facts(new, [row.body])
    row.facts = [*row.facts, *added]
    if added:
        row.body = row.body.rstrip() + "\n\n" + " ".join(added)
    row.case_ids = [*row.case_ids, case.id or 0]
    if case.conversation_id is not None and case.conversation_id not in row.conversation_ids:
        row.conversation_ids = [*row.conversation_ids, case.conversation_id]


def _suggest(s: Session, case: EvalCase, open_rows: list[KnowledgeSuggestion]) -> KnowledgeSuggestion | None:
    statements = _knowledge(case.reference or "", str(case.request.get("customer_name", "")))
    cited = _cited_bodies(s, case.draft_meta.get("cited", []))
    new = _new_facts(statements, [a.body for a in cited.values()])
    if not new:
        return None                                 # the cited articles hold everything the rep said
    target = next(iter(cited.values()), None) if _kept_the_draft(case) else None
    if target is None:
        new = statements                            # a new article must answer on its own
    for row in open_rows:
        if row.article_id == target.id if target else (row.kind == "new" and _same_topic(row, new)):
            _merge(row, case, new)
            return None
    conversations = [case.conversation_id] if case.conversation_id is not None else []
    if target is not None:
        heading = _title(case)
        latest = store_knowledge.latest_version(s, target.id)
        row = KnowledgeSuggestion(kind="edit", article_id=target.id, base_version=latest.version if latest else None,
                                  title=target.title, locale=target.locale, intent=target.intent, tags=list(target.tags),
                                  body=f"{target.body.rstrip()}\n\n## {heading}\n\n{' '.join(new)}", facts=new,
                                  case_ids=[case.id or 0], conversation_ids=conversations)
    else:
        title, locale = _title(case), _locale(case)
        intent = case.draft_meta.get("intent") or ""
        row = KnowledgeSuggestion(kind="new", article_id=_unique_id(s, _slug(title), locale), title=title,
                                  locale=locale, intent=intent if intent in INTENTS and intent != "other" else "",
                                  tags=_tags(case), body=f"# {title}\n\n{' '.join(new)}", facts=new,
                                  case_ids=[case.id or 0], conversation_ids=conversations)
    s.add(row)
    s.flush()
    open_rows.append(row)
    return row


def propose(settings: Settings, limit: int = 200) -> int:
    """Look at cases not yet looked at (each once); returns how many suggestions were opened."""
    opened = 0
    with db.session(settings.database.url) as s:
        db.lock(s, "knowledge-suggestions")
        pending = evalcases.not_suggested(s, limit)
        open_rows = store_suggestions.listing(s, "open")
        for case in pending:
            case.suggested = True
            if case.reference and case.source in SOURCES and case.state != "dropped":
                opened += _suggest(s, case, open_rows) is not None
    return opened


def row(k: KnowledgeSuggestion) -> dict[str, Any]:
    return {"id": k.id, "kind": k.kind, "state": k.state, "article_id": k.article_id, "title": k.title,
            "locale": k.locale, "intent": k.intent, "tags": k.tags, "facts": k.facts, "case_ids": k.case_ids,
            "conversation_ids": k.conversation_ids, "base_version": k.base_version, "version": k.version,
            "created_at": k.created_at.isoformat(timespec="seconds"), "decided_by": k.decided_by,
            "decided_at": k.decided_at.isoformat(timespec="seconds") if k.decided_at else None, "reason": k.reason}


def rows(url: str, state: str | None = None) -> list[dict[str, Any]]:
    """For `kb suggestions list` and the review page."""
    with db.reading(url) as s:
        return [row(k) for k in store_suggestions.listing(s, state)]


def get(url: str, suggestion_id: int) -> KnowledgeSuggestion:
    with db.reading(url) as s:
        found = s.get(KnowledgeSuggestion, suggestion_id)
    if found is None:
        raise SuggestionError(f"no knowledge suggestion with id {suggestion_id}")
    return found


@dataclass(frozen=True)
class Detail:
    """A suggestion with what a lead needs to judge it (`kb suggestions show`, the review page)."""

    suggestion: KnowledgeSuggestion
    before: str                                 # the article it was written against ("" for a new one)
    cases: list[EvalCase]                       # where it came from: the customer's turn and the rep's final
    conversations: dict[int, Conversation]      # those still stored
    history: list[ArticleVersion]               # the article's versions, oldest first


def detail(url: str, suggestion_id: int) -> Detail:
    with db.reading(url) as s:
        found = s.get(KnowledgeSuggestion, suggestion_id)
        if found is None:
            raise SuggestionError(f"no knowledge suggestion with id {suggestion_id}")
        before = ""
        if found.kind == "edit":
            base = store_knowledge.version(s, found.article_id, found.base_version)
            article = s.get(Article, found.article_id)
            before = base.body if base is not None else article.body if article is not None else ""
        cases = [c for c in (s.get(EvalCase, i) for i in found.case_ids) if c is not None]
        conversations = {c.id: c for c in (s.get(Conversation, i) for i in found.conversation_ids)
                         if c is not None and c.id is not None}
        return Detail(found, before, cases, conversations, store_knowledge.history(s, found.article_id))


def as_file(k: KnowledgeSuggestion) -> str:
    """The suggested article as a knowledge file (front matter and body), for ops to commit."""
    front = [f"title: {k.title}", f"tags: [{', '.join(k.tags)}]", f"locale: {k.locale}",
             f"updated: {now().date().isoformat()}"] + ([f"intent: {k.intent}"] if k.intent else [])
    return "---\n" + "\n".join(front) + "\n---\n\n" + k.body.strip() + "\n"


@dataclass(frozen=True)
class Accepted:
    suggestion: KnowledgeSuggestion
    version: int


def _open(s: Session, suggestion_id: int) -> KnowledgeSuggestion:
    found = s.get(KnowledgeSuggestion, suggestion_id, with_for_update=True)
    if found is None:
        raise SuggestionError(f"no knowledge suggestion with id {suggestion_id}")
    if found.state != "open":
        raise SuggestionError(f"suggestion {suggestion_id} is {found.state} (by {found.decided_by}): only open "
                              "suggestions can be decided")
    return found


def accept(settings: Settings, suggestion_id: int, lead: str, *, intent: str | None = None,
           title: str | None = None) -> Accepted:
    """Write the suggested article as a new version of its article (a new article for `new`)."""
    if intent is not None and intent not in INTENTS:
        raise SuggestionError(f"intent must be one of {', '.join(INTENTS)}, got {intent!r}")
    with db.session(settings.database.url) as s:
        db.lock(s, "knowledge-sync")
        found = _open(s, suggestion_id)
        if found.kind == "edit":
            current = store_knowledge.latest_version(s, found.article_id)
            if s.get(Article, found.article_id) is None:
                raise SuggestionError(f"article {found.article_id} no longer exists: reject the suggestion")
            if current is not None and found.base_version is not None and current.version != found.base_version:
                raise SuggestionError(f"article {found.article_id} changed since the suggestion was made (version "
                                      f"{found.base_version} -> {current.version}): reject it; the next edit a rep "
                                      "makes will suggest against the new version")
        version = versions.publish(s, article_id=found.article_id, title=title or found.title, tags=found.tags,
                                   locale=found.locale, intent=intent if intent is not None else found.intent,
                                   body=found.body, author=lead, suggestion_id=suggestion_id)
        found.state, found.decided_by, found.decided_at, found.version = "accepted", lead, now(), version.version
        found.title, found.intent = version.title, version.intent
        audit.record(s, lead, "suggestion_accepted", suggestion_id=suggestion_id, article_id=found.article_id,
                     version=version.version)
        return Accepted(found, version.version)


def reject(settings: Settings, suggestion_id: int, lead: str, reason: str) -> KnowledgeSuggestion:
    if not reason.strip():
        raise SuggestionError("a rejection needs a reason")
    with db.session(settings.database.url) as s:
        found = _open(s, suggestion_id)
        found.state, found.decided_by, found.decided_at, found.reason = "rejected", lead, now(), reason
        audit.record(s, lead, "suggestion_rejected", suggestion_id=suggestion_id, article_id=found.article_id,
                     reason=reason)
        return found
