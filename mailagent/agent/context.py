"""What a run carries besides the conversation: the database to search, the customer's locale,
and a record of what the tools did. Tools see it; the model never does."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AgentContext:
    url: str
    locale: str | None = None
    searches: list[dict[str, object]] = field(default_factory=list)
