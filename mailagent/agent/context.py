"""What a run carries besides the conversation: who the customer is (from the database, never
from the model), where to look things up, and a record of what the tools did. Tools see it; the
model never does, and only `locale` is kept when a paused run is saved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailagent.actions.backends.base import Backend
from mailagent.config import Settings


@dataclass
class AgentContext:
    settings: Settings
    customer: str = ""                        # the conversation's customer address
    conversation_id: int = 0
    draft_id: int = 0
    backend: Backend | None = None
    locale: str | None = None
    searches: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    unverified_sender: str = ""               # why the sender cannot speak for the account ("": it can)
    withheld: list[str] = field(default_factory=list)   # account tools refused for that reason

    @property
    def url(self) -> str:
        return self.settings.database.url

    def saved(self) -> dict[str, Any]:
        """What a saved run keeps of the context: nothing secret, nothing that can go stale."""
        return {"locale": self.locale}
