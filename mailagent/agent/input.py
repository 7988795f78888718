"""The run's input: the conversation as the agent reads it.

Everything the sender wrote is data: the message, earlier customer turns, the subject and the
display name are fenced (`<customer_message>`, `<earlier_turn>`), with our fence tags inside them
made inert, so customer text cannot close a fence and speak as us. The display name is only given
when it is plainly a name (`guardrails.safe_display_name`): the model greets with it. The offline
model and the instructions both rely on `LATEST_MARKER` and the `<customer_message subject=...>`
fence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailagent.agent.guardrails import (
    FENCE_TAG,
    LATEST_MARKER,
    defuse_fences,
    safe_display_name,
)

__all__ = ["LATEST_MARKER", "Turn", "compose_input"]


@dataclass(frozen=True)
class Turn:
    who: str              # "customer" | "us"
    at: datetime
    text: str


def compose_input(*, mailbox: str, customer_name: str, customer_addr: str, customer_details: dict[str, str],
                  history: list[Turn], subject: str, latest: str) -> str:
    """The run's input: earlier turns for context, then the message to answer, fenced as data."""
    details = "".join(f"\n- {k}: {v}" for k, v in customer_details.items())
    name = safe_display_name(customer_name)
    lines = [f"Mailbox: {mailbox}", f"Customer: {name} <{customer_addr}>{details}", ""]
    if history:
        lines.append("Earlier in this conversation (oldest first):")
        for turn in history:
            who = "customer" if turn.who == "customer" else "us"
            text = defuse_fences(turn.text.strip()) if who == "customer" else turn.text.strip()
            lines.append(f'<earlier_turn from="{who}" at="{turn.at:%Y-%m-%d %H:%M}">\n{text}\n</earlier_turn>\n')
    subject_text = " ".join(defuse_fences(subject).split())
    lines += [LATEST_MARKER, f"<{FENCE_TAG} subject={subject_text!r}>", defuse_fences(latest.strip()), f"</{FENCE_TAG}>"]
    return "\n".join(lines)
