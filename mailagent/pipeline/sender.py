"""Who sent a message, decided once in the classify stage and kept on the message row.

The classify stage calls `check` before its transaction (own DKIM verification looks up keys in
DNS) and records `fields` inside it. Everything later (policy facts, review surfaces) reads the columns.
"""

from __future__ import annotations

from mailagent.config import Settings
from mailagent.mail.auth import (
    DnsLookup,
    SenderAuth,
    authenticate,
    sender_matches_customer,
)
from mailagent.store.tickets import Ticket


def check(settings: Settings, raw: bytes, *, dns: DnsLookup | None = None) -> SenderAuth:
    """The verdict on a raw message under this configuration (`[ingest]` keys)."""
    return authenticate(raw, trusted_ids=settings.ingest.trusted_authserv_ids,
                        verify=settings.ingest.verify_dkim, dns=dns)


def fields(verdict: SenderAuth) -> dict[str, object]:
    """The message's columns that keep the verdict."""
    return {"sender_authenticated": verdict.authenticated, "sender_auth_method": verdict.method,
            "sender_auth_domain": verdict.domain, "sender_auth_reason": verdict.reason}


def unverified(ticket: Ticket) -> str:
    """Why the turn's sender cannot speak for the customer of record's account ("" when it can):
    a From that is not the customer's (a hijacked thread), not authenticated (a forged From), or a
    Reply-To outside the customer's domain. Then no account data reaches the model and no action
    runs without a rep. A helpdesk's requester is the helpdesk's word."""
    if ticket.channel != "email":
        return ""
    auth = SenderAuth(bool(ticket.sender_authenticated), ticket.sender_auth_method, ticket.sender_auth_domain,
                      ticket.sender_auth_reason or "no verdict recorded")
    match = sender_matches_customer(from_addr=ticket.from_addr, reply_to=ticket.reply_to,
                                    customer_addr=ticket.customer_addr, auth=auth)
    return "" if match.matches else match.reason
