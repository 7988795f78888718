"""Replies in the outbox found by what other mail says about them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from mailagent.store.models import Outbound


def by_message_ids(s: Session, message_ids: Sequence[str]) -> Outbound | None:
    """The reply sent with one of these Message-IDs (a bounce names them), locked for the update."""
    return s.exec(select(Outbound).where(col(Outbound.message_id).in_(message_ids)).with_for_update()).first()
