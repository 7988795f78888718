"""Who sent a message, decided once in the classify stage and kept on the message row.

The classify stage calls `check` before its transaction (own DKIM verification looks up keys in
DNS) and `record` inside it. Everything later (policy facts, review surfaces) reads the columns.
"""

from __future__ import annotations

from mailagent.config import Settings
from mailagent.mail.auth import DnsLookup, SenderAuth, authenticate
from mailagent.store.models import Message


def check(settings: Settings, raw: bytes, *, dns: DnsLookup | None = None) -> SenderAuth:
    """The verdict on a raw message under this configuration (`[ingest]` keys)."""
    return authenticate(raw, trusted_ids=settings.ingest.trusted_authserv_ids,
                        verify=settings.ingest.verify_dkim, dns=dns)


def record(message: Message, verdict: SenderAuth) -> None:
    message.sender_authenticated = verdict.authenticated
    message.sender_auth_method = verdict.method
    message.sender_auth_domain = verdict.domain
    message.sender_auth_reason = verdict.reason
