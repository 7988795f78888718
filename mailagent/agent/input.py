"""The run's input: the conversation as the agent reads it. Customer text is fenced as data
(`<customer_message>`), after a marker the offline model and the instructions both rely on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

LATEST_MARKER = "Latest customer message (answer this one):"


@dataclass(frozen=True)
class Turn:
    who: str              # "customer" | "us"
    at: datetime
    text: str


def compose_input(*, mailbox: str, customer_name: str, customer_addr: str, customer_details: dict[str, str],
                  history: list[Turn], subject: str, latest: str) -> str:
    """The run's input: earlier turns for context, then the message to answer, fenced as data."""
    details = "".join(f"\n- {k}: {v}" for k, v in customer_details.items())
    lines = [f"Mailbox: {mailbox}", f"Customer: {customer_name} <{customer_addr}>{details}", ""]
    if history:
        lines.append("Earlier in this conversation (oldest first):")
        for turn in history:
            lines.append(f"[{turn.who}, {turn.at:%Y-%m-%d %H:%M}]\n{turn.text.strip()}\n")
    lines += [LATEST_MARKER, f"<customer_message subject={subject!r}>", latest.strip(), "</customer_message>"]
    return "\n".join(lines)
