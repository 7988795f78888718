"""A helpdesk ticket as the turns of a conversation: which of its comments are new, and what each
is. Pure: the caller says which comments it stored before and which posts are ours (from its
own ledger: the helpdesk's comment ids of our posts, and our markers).

Public comments only: internal notes and unsent draft replies are team talk, never turns. A
customer's comment is `normal` (answered like mail); a rep's public reply `rep` (takeover, the
final of a draft); a post of ours read back `own` (history). A reply under a rep's name that
carries our post's id or marker is ours (an approval we posted for them); one that is our Help
Scout draft reply, sent by the rep, is the rep's and names that draft."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from mailagent.helpdesks.base import Role, Ticket, Turn
from mailagent.helpdesks.guard import is_internal


@dataclass(frozen=True)
class NewTurn:
    turn: Turn
    kind: str                  # normal | rep | own
    draft_id: int | None = None   # a rep sent the draft reply we posted for this draft


def new_turns(ticket: Ticket, stored: Collection[str], ours: Mapping[str, int | None],
              draft_replies: Mapping[str, int | None]) -> list[NewTurn]:
    """The public turns whose comment ids are not in `stored`, oldest first. `ours` and
    `draft_replies` map `id:<comment id>` and our markers to the draft a post was for."""
    found = []
    for turn in ticket.turns:
        if is_internal(turn) or turn.id in stored:
            continue
        if turn.role is Role.CUSTOMER:
            found.append(NewTurn(turn, "normal"))
        elif turn.role is Role.US or any(n in ours for n in _names(turn)):
            found.append(NewTurn(turn, "own"))
        else:
            found.append(NewTurn(turn, "rep", next((draft_replies[n] for n in _names(turn) if n in draft_replies), None)))
    return found


def _names(turn: Turn) -> list[str]:
    return [f"id:{turn.id}", *turn.markers]
