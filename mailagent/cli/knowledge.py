"""`kb`: the knowledge base."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.cli.common import (
    Subparsers,
    command,
    fail_on,
    group,
    id_arg,
    json_flag,
    print_json,
    reviewer,
    reviewer_flag,
    store,
)
from mailagent.cli.rows import print_table

if TYPE_CHECKING:
    from mailagent.config import Settings


def cmd_sync(settings: Settings, _args: argparse.Namespace) -> int:
    from mailagent.knowledge.search import sync

    result = sync(store(settings), Path(settings.knowledge.directory))
    print(f"knowledge base {settings.knowledge.directory}: {result.added} added, {result.updated} updated, "
          f"{result.removed} removed, {result.unchanged} unchanged"
          + (f", {result.kept} accepted suggestion(s) kept" if result.kept else ""))
    return 0


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.knowledge.search import search

    hits = search(store(settings), " ".join(args.query), locale=args.locale, limit=args.limit)
    if args.json:
        print_json([{"id": h.id, "title": h.title, "locale": h.locale, "score": round(h.score, 3),
                     "snippet": h.snippet} for h in hits])
        return 0
    if not hits:
        print("no matching article (run `mailagent kb sync` if the knowledge base is empty)")
    for h in hits:
        print(f"{h.score:.2f}  {h.id}  {h.title}\n      {' '.join(h.snippet.split())[:160]}")
    return 0


def cmd_suggestions_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals import suggestions

    rows = suggestions.rows(store(settings), args.state)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["id", "kind", "state", "article_id", "title", "case_ids", "conversation_ids", "facts"])
    return 0


def cmd_suggestions_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals import suggestions

    with fail_on(suggestions.SuggestionError):
        found = suggestions.get(store(settings), args.id)
    if args.json:
        print_json([suggestions.row(found) | {"body": found.body}])
        return 0
    what = "a new article" if found.kind == "new" else f"an edit of {found.article_id} (version {found.base_version})"
    print(f"suggestion {found.id}: {what}, {found.state}; from case(s) {', '.join(map(str, found.case_ids))}, "
          f"conversation(s) {', '.join(map(str, found.conversation_ids))}")
    print("facts it adds:\n" + "\n".join(f"  - {f}" for f in found.facts))
    print(f"\n--- {found.article_id}.md ---\n{suggestions.as_file(found)}")
    return 0


def cmd_suggestions_accept(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals import suggestions

    store(settings)
    with fail_on(suggestions.SuggestionError):
        done = suggestions.accept(settings, args.id, reviewer(args), intent=args.intent, title=args.title)
    print(f"suggestion {args.id} accepted: article {done.suggestion.article_id} is now version {done.version} "
          "(searchable now)")
    return 0


def cmd_suggestions_reject(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals import suggestions

    store(settings)
    with fail_on(suggestions.SuggestionError):
        suggestions.reject(settings, args.id, reviewer(args), args.reason)
    print(f"suggestion {args.id} rejected")
    return 0


def register(sub: Subparsers) -> None:
    kb = group(sub, "kb", "knowledge base")
    command(kb, "sync", cmd_sync, help="load the article files into the database")
    c = command(kb, "search", cmd_search, help="search the articles, as the agent does")
    c.add_argument("query", nargs="+", help="the words to search for")
    c.add_argument("--locale", help="prefer articles in this language (en, de, es)")
    c.add_argument("--limit", type=int, default=5, metavar="N", help="at most N articles (default 5)")
    json_flag(c)
    suggestions = group(kb, "suggestions", "articles and edits proposed from reps' replies")
    c = command(suggestions, "list", cmd_suggestions_list, help="the suggestions, oldest first")
    c.add_argument("--state", choices=["open", "accepted", "rejected"], help="only suggestions in this state")
    json_flag(c)
    c = command(suggestions, "show", cmd_suggestions_show, help="one suggestion: the facts it adds, the article as a file")
    id_arg(c, "suggestion", "kb suggestions list")
    json_flag(c)
    c = command(suggestions, "accept", cmd_suggestions_accept, help="write it as a new article version, searchable at once")
    id_arg(c, "suggestion", "kb suggestions list")
    c.add_argument("--intent", help="the intent the article answers (policies auto-send by intent)")
    c.add_argument("--title", help="a better title")
    reviewer_flag(c)
    c = command(suggestions, "reject", cmd_suggestions_reject, help="close it without a change")
    id_arg(c, "suggestion", "kb suggestions list")
    c.add_argument("--reason", required=True, help="why (kept with the suggestion)")
    reviewer_flag(c)
