"""The newest rows of a table for the list commands, in plain SQL (`store.plain`): a listing is a
whole process, and the ORM's import would be most of its time. Rows come back as objects with the
model's attribute names, so the same row functions format them as format the ORM's."""

from __future__ import annotations

from types import SimpleNamespace

from mailagent.store import plain

_MESSAGE = ("id, message_id, conversation_id, mailbox, source, state, kind, kind_reason, parse_error, sha256, "
            "from_addr, from_name, subject, sent_at, received_at, attachments, duplicates, attempts, error")
_CONVERSATION = ("id, channel, mailbox, helpdesk, ticket_id, customer_addr, customer_name, subject, state, taken_by, "
                 "created_at, last_message_at")
_DRAFT = ("id, conversation_id, message_id, state, decision, shadow, rule, reasons, confidence, intent, language, "
          "needs_human, needs_human_reason, flags, cited, model, prompt_version, usage, trace_id, outbound_id, "
          "reviewed_by, created_at, decided_at")


def _newest(url: str, table: str, columns: str, limit: int, where: str = "", params: tuple[object, ...] = ()
            ) -> tuple[list[SimpleNamespace], dict[str, dict[int, int]]]:
    """The newest `limit` rows, oldest first, and for conversations the message and reply counts."""
    with plain.connect(url, write=False) as conn:
        rows = conn.objects(f"SELECT {columns} FROM {table} {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        counts: dict[str, dict[int, int]] = {}
        if table == "conversation":
            for other in ("message", "outbound"):
                counts[other] = dict(conn.execute(
                    f"SELECT conversation_id, count(*) FROM {other} GROUP BY conversation_id").fetchall())
        return rows[::-1], counts


def messages(url: str, limit: int) -> list[SimpleNamespace]:
    return _newest(url, "message", _MESSAGE, limit)[0]


def drafts(url: str, state: str | None, limit: int) -> list[tuple[SimpleNamespace, tuple[str, str | None] | None]]:
    """Each draft with how far its reply got (see `deliveries`)."""
    rows = _newest(url, "draft", _DRAFT, limit, "WHERE state = ?" if state else "", (state,) if state else ())[0]
    delivered = deliveries(url, [d.id for d in rows])
    return [(d, delivered.get(d.id)) for d in rows]


def deliveries(url: str, draft_ids: list[int]) -> dict[int, tuple[str, str | None]]:
    """How far each draft's reply got (the outbox's or the helpdesk post's state, and its last
    error): a draft `sent` by the policy or a rep may still be `failed` or `unknown` on the wire."""
    if not draft_ids:
        return {}
    marks = ", ".join("?" * len(draft_ids))
    with plain.connect(url, write=False) as conn:
        mail = conn.execute(f"SELECT d.id, o.state, o.last_error FROM draft d JOIN outbound o ON o.id = d.outbound_id "
                            f"WHERE d.id IN ({marks})", draft_ids).fetchall()
        posts = conn.execute(f"SELECT draft_id, state, last_error FROM helpdesk_post WHERE kind = 'reply' "
                             f"AND draft_id IN ({marks}) ORDER BY id", draft_ids).fetchall()
    return {int(ident): (str(state), error) for ident, state, error in [*posts, *mail]}


def conversations(url: str, limit: int) -> list[tuple[SimpleNamespace, int, int]]:
    """Each conversation with its number of messages and of replies."""
    rows, counts = _newest(url, "conversation", _CONVERSATION, limit)
    return [(c, counts["message"].get(c.id, 0), counts["outbound"].get(c.id, 0)) for c in rows]
