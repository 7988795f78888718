"""What a rep sees in the helpdesk for a held draft: the reply, why it was held, the articles it
cites and any proposed action with its amount, and how to approve or reject it. Everything the
model or the customer wrote is escaped: a note is HTML the helpdesk renders to reps."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from mailagent.config import HelpdeskTags
from mailagent.helpdesks.tags import action_tag


@dataclass(frozen=True)
class ProposedAction:
    tool: str                  # issue_refund, cancel_subscription, resend_invoice ...
    summary: str               # e.g. "order A-1042"
    amount: Decimal | None = None
    currency: str | None = None
    id: int | None = None      # set while it waits for a rep: its own approve and reject tags


@dataclass(frozen=True)
class HeldDraft:
    draft_id: int
    reply: str
    reasons: tuple[str, ...]
    cited: tuple[str, ...] = ()
    actions: tuple[ProposedAction, ...] = ()
    confidence: float | None = None
    status: str = "held for review"


def money(amount: Decimal, currency: str | None) -> str:
    value = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{value} {currency.upper()}" if currency else str(value)


def reply_html(text: str) -> str:
    """Plain text as HTML paragraphs (line breaks kept), everything escaped."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(f"<p>{escape(p.strip()).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def held_note_html(draft: HeldDraft, tags: HelpdeskTags, *, with_reply: bool = True) -> str:
    """The internal note for a held draft. `with_reply=False` when the reply itself is a draft
    reply in the helpdesk (Help Scout) and the note only explains it."""
    parts = [f"<p><strong>mailagent draft #{draft.draft_id}: {escape(draft.status)}</strong></p>"]
    if with_reply and draft.reply.strip():
        parts.append(f"<blockquote>{reply_html(draft.reply)}</blockquote>")
    parts.append("<p><strong>Why it was held</strong></p>")
    parts.append(_list(draft.reasons) or "<p>(no reason recorded)</p>")
    if draft.confidence is not None:
        parts.append(f"<p>Confidence: {draft.confidence:.2f}</p>")
    if draft.cited:
        parts.append("<p><strong>Cited articles</strong></p>" + _list(draft.cited))
    waiting = tuple(a for a in draft.actions if a.id is not None)
    if draft.actions:
        parts.append("<p><strong>Proposed actions (nothing runs until a rep approves)</strong></p>")
        parts.append(_list(tuple(_action(a, tags) for a in draft.actions), escaped=True))
    if waiting:
        parts.append(f"<p>Approve every action above: add <code>{escape(tags.approve)}</code>; reject them all: "
                     f"add <code>{escape(tags.reject)}</code> (write why in an internal note first). To decide one "
                     "differently, add its own tag (next to it) as well. The reply is written once they are "
                     "decided.</p>")
    elif with_reply:
        parts.append(f"<p>Approve: apply the macro that adds <code>{escape(tags.approve)}</code> (the reply is "
                     f"posted under your name). Reject: add <code>{escape(tags.reject)}</code> (write why in an "
                     "internal note first). Or write your own reply: it is kept as the final.</p>")
    else:
        parts.append(f"<p>Send the draft reply as is or edit it, or discard it and reply yourself; add "
                     f"<code>{escape(tags.reject)}</code> to reject it.</p>")
    return "\n".join(parts)


def _action(action: ProposedAction, tags: HelpdeskTags) -> str:
    amount = f": {escape(money(action.amount, action.currency))}" if action.amount is not None else ""
    text = f"<code>{escape(action.tool)}</code> {escape(action.summary)}{amount}"
    if action.id is not None:
        text += (f" (approve: <code>{escape(action_tag(tags.approve, action.id))}</code>, reject: "
                 f"<code>{escape(action_tag(tags.reject, action.id))}</code>)")
    return text


def _list(items: tuple[str, ...], *, escaped: bool = False) -> str:
    if not items:
        return ""
    return "<ul>" + "".join(f"<li>{i if escaped else escape(i)}</li>" for i in items) + "</ul>"
