"""What a rep sees in the helpdesk for a held draft: the reply, why it was held, the articles it
cites and any proposed action with its amount, and how to approve or reject it. Everything the
model or the customer wrote is escaped: a note is HTML the helpdesk renders to reps."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from mailagent.config import HelpdeskTags


@dataclass(frozen=True)
class ProposedAction:
    tool: str                  # issue_refund, cancel_subscription, resend_invoice ...
    summary: str               # e.g. "order A-1042"
    amount: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True)
class HeldDraft:
    draft_id: int
    reply: str
    reasons: tuple[str, ...]
    cited: tuple[str, ...] = ()
    actions: tuple[ProposedAction, ...] = ()
    confidence: float | None = None


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
    parts = [f"<p><strong>mailagent draft #{draft.draft_id}: held for review</strong></p>"]
    if with_reply:
        parts.append(f"<blockquote>{reply_html(draft.reply) or '<p><em>(no reply text)</em></p>'}</blockquote>")
    parts.append("<p><strong>Why it was held</strong></p>")
    parts.append(_list(draft.reasons) or "<p>(no reason recorded)</p>")
    if draft.confidence is not None:
        parts.append(f"<p>Confidence: {draft.confidence:.2f}</p>")
    if draft.cited:
        parts.append("<p><strong>Cited articles</strong></p>" + _list(draft.cited))
    if draft.actions:
        parts.append("<p><strong>Proposed actions (nothing runs until a rep approves)</strong></p>")
        parts.append(_list(tuple(_action(a) for a in draft.actions), escaped=True))
    if with_reply:
        parts.append(f"<p>Approve: apply the macro that adds <code>{escape(tags.approve)}</code> (the reply is "
                     f"posted under your name). Reject: add <code>{escape(tags.reject)}</code>. Or write your "
                     "own reply: it is kept as the final.</p>")
    else:
        parts.append(f"<p>Send the draft reply as is or edit it, or discard it and reply yourself; add "
                     f"<code>{escape(tags.reject)}</code> to reject it.</p>")
    return "\n".join(parts)


def _action(action: ProposedAction) -> str:
    amount = f": {escape(money(action.amount, action.currency))}" if action.amount is not None else ""
    return f"<code>{escape(action.tool)}</code> {escape(action.summary)}{amount}"


def _list(items: tuple[str, ...], *, escaped: bool = False) -> str:
    if not items:
        return ""
    return "<ul>" + "".join(f"<li>{i if escaped else escape(i)}</li>" for i in items) + "</ul>"
