"""`kb`: the knowledge base."""

from __future__ import annotations

import argparse
from pathlib import Path

from mailagent.cli.common import (
    Subparsers,
    command,
    group,
    json_flag,
    print_json,
    store,
)
from mailagent.config import Settings


def cmd_sync(settings: Settings, _args: argparse.Namespace) -> int:
    from mailagent.knowledge.search import sync

    result = sync(store(settings), Path(settings.knowledge.directory))
    print(f"knowledge base {settings.knowledge.directory}: {result.added} added, {result.updated} updated, "
          f"{result.removed} removed, {result.unchanged} unchanged")
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


def register(sub: Subparsers) -> None:
    kb = group(sub, "kb", "knowledge base")
    command(kb, "sync", cmd_sync, help="load the article files into the database")
    c = command(kb, "search", cmd_search, help="search the articles, as the agent does")
    c.add_argument("query", nargs="+")
    c.add_argument("--locale", help="prefer articles in this language (en, de, es)")
    c.add_argument("--limit", type=int, default=5, metavar="N", help="at most N articles (default 5)")
    json_flag(c)
