"""Leads curate the learning loop: knowledge suggestions (accept as a new article version, or
reject), eval cases (accept into the sets, drop, tag) and the knowledge base they change. Every
form calls the verb `mailagent kb suggestions` and `mailagent evals` call, with the signed-in
lead as the actor (the verbs decide, lock and audit); the pages only shape what they read."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from mailagent.evals import cases, suggestions
from mailagent.intents import INTENTS
from mailagent.knowledge.search import search
from mailagent.knowledge.versions import history
from mailagent.store import db
from mailagent.store.models import Article
from mailagent.web.auth import Visitor
from mailagent.web.decisions import field
from mailagent.web.textdiff import word_diff

if TYPE_CHECKING:
    from mailagent.web.site import Site

SUGGESTION_STATES = ("open", "accepted", "rejected")
_WORDS = re.compile(r"[\s,]+")


# --- knowledge suggestions ---------------------------------------------------------------------

def suggestion_list(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    asked = request.query_params.get("state", "open")
    state = asked if asked in SUGGESTION_STATES else None
    return site.render(request, visitor, "suggestions.html", rows=suggestions.rows(site.url, state), state=state,
                       states=SUGGESTION_STATES)


def suggestion(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    try:
        found = suggestions.detail(site.url, request.path_params["id"])
    except suggestions.SuggestionError as exc:
        return site.error(request, visitor, 404, str(exc))
    return site.render(request, visitor, "suggestion.html", d=found, k=found.suggestion, intents=INTENTS,
                       diff=word_diff(found.before, found.suggestion.body))


def accept_suggestion(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    ident = request.path_params["id"]
    intent, title = field(form, "intent").strip(), field(form, "title").strip()
    try:
        done = suggestions.accept(site.settings, ident, visitor.user.name, intent=intent or None, title=title or None)
    except suggestions.SuggestionError as exc:
        return site.done(request, f"/suggestions/{ident}", str(exc), ok=False)
    return site.done(request, f"/suggestions/{ident}",
                     f"suggestion {ident} accepted by {visitor.user.name}: article {done.suggestion.article_id} is "
                     f"now version {done.version}, searchable at once")


def reject_suggestion(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    ident = request.path_params["id"]
    try:
        suggestions.reject(site.settings, ident, visitor.user.name, field(form, "reason"))
    except suggestions.SuggestionError as exc:
        return site.done(request, f"/suggestions/{ident}", str(exc), ok=False)
    return site.done(request, "/suggestions", f"suggestion {ident} rejected by {visitor.user.name}: nothing changed")


# --- the knowledge base ------------------------------------------------------------------------

def knowledge(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    query = request.query_params.get("q", "").strip()
    hits = search(site.url, query, limit=10) if query else []
    return site.render(request, visitor, "knowledge.html", query=query, hits=hits)


def article(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    ident = request.path_params["id"]
    with db.reading(site.url) as s:
        found, versions = s.get(Article, ident), history(s, ident)
    if found is None:
        return site.error(request, visitor, 404, f"no article with id {ident!r}")
    return site.render(request, visitor, "article.html", article=found, versions=versions)


# --- eval cases --------------------------------------------------------------------------------

def case_list(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    q = request.query_params
    which = cases.Filter(tuple(v for v in q.getlist("state") if v in cases.STATES),
                         tuple(v for v in q.getlist("source") if v in cases.SOURCES),
                         tuple(v for v in q.getlist("tag") if v))
    with db.reading(site.url) as s:
        counts, tags = cases.summary(s)
        shown = cases.select_cases(s, which, limit=500)
    back = request.url.path.removeprefix(request.scope.get("root_path", "")) + (f"?{request.url.query}" if request.url.query else "")
    return site.render(request, visitor, "evalcases.html", rows=list(reversed(shown)), which=which, tags=tags,
                       counts=counts, states=cases.STATES, sources=cases.SOURCES, back=back)


def case(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    try:
        found = cases.get(site.url, request.path_params["id"])
    except cases.CaseError as exc:
        return site.error(request, visitor, 404, str(exc))
    diff = word_diff(found.draft, found.reference) if found.reference is not None else []
    return site.render(request, visitor, "evalcase.html", c=found, diff=diff)


def accept_cases(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    return _curate(site, request, visitor, form, "accepted")


def drop_cases(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    return _curate(site, request, visitor, form, "dropped")


def _curate(site: Site, request: Request, visitor: Visitor, form: FormData | None, state: str) -> Response:
    back = _back(form)
    chosen = [v for v in (form.getlist("id") if form is not None else []) if isinstance(v, str)]
    if not chosen or not all(v.isdigit() for v in chosen):
        return site.done(request, back, "choose at least one case", ok=False)
    try:
        rows = cases.curate(site.url, [int(v) for v in chosen], state, visitor.user.name)
    except cases.CaseError as exc:
        return site.done(request, back, str(exc), ok=False)
    return site.done(request, back, f"{state} by {visitor.user.name}: case(s) {', '.join(str(r.id) for r in rows)}")


def tag_case(site: Site, request: Request, visitor: Visitor, form: FormData | None) -> Response:
    ident = request.path_params["id"]
    add, remove = (_WORDS.split(field(form, name).strip()) for name in ("add", "remove"))
    try:
        row = cases.retag(site.url, ident, [t for t in add if t], [t for t in remove if t], visitor.user.name)
    except cases.CaseError as exc:
        return site.done(request, f"/evals/{ident}", str(exc), ok=False)
    return site.done(request, f"/evals/{ident}", f"case {row.id} tagged by {visitor.user.name}: {' '.join(row.tags)}")


def _back(form: FormData | None) -> str:
    """Where a curation form came from: the case list (with its filters) or a case; nothing else."""
    target = field(form, "back")
    return target if re.fullmatch(r"/evals(/\d+)?(\?[\w=&%:.+-]*)?", target) else "/evals"
