"""Tools the agent may call. Read-only tools run at once."""

from __future__ import annotations

import json

from agents import RunContextWrapper, function_tool

from ..knowledge.search import search
from .context import AgentContext


@function_tool
def search_knowledge(ctx: RunContextWrapper[AgentContext], query: str, locale: str | None = None) -> str:
    """Search the company's knowledge base; returns a JSON list of articles (id, title, score 0..1, content).

    Args:
        query: The customer's question or the topic, in any language.
        locale: Preferred article language (en, de, es), if known.
    """
    hits = search(ctx.context.url, query, locale=locale or ctx.context.locale, limit=4)
    found = [{"id": h.id, "title": h.title, "locale": h.locale, "intent": h.intent, "score": round(h.score, 3),
              "content": h.body[:3000]} for h in hits]
    ctx.context.searches.append({"query": query, "locale": locale, "hits": [(h.id, round(h.score, 3)) for h in hits]})
    return json.dumps(found, ensure_ascii=False)
