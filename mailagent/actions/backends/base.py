"""What every actions backend offers: lookups, side effects made idempotent by a caller's key, and
typed results and errors, so the tools above never depend on which backend answers.

Money is a `Decimal` with two places here; `to_dict()` renders it as a string ("12.50") so a tool
output never carries a float. Every side effect takes an `idempotency_key` chosen by the caller
(derived from the approved proposal, never from an attempt): the same key with the same request
is applied once and then answered from the backend's record with `replayed=True`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

CENT = Decimal("0.01")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def money(value: Decimal | float | str) -> Decimal:
    """A two-place Decimal; floats go through `str` so 9.52 stays 9.52."""
    return Decimal(str(value)).quantize(CENT)


def check_idempotency_key(key: str) -> None:
    """Refuse a key that is empty or not printable ASCII (it travels in an HTTP header)."""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValueError("an idempotency key is 1 to 255 printable ASCII characters without spaces")


def refund_amount(amount: Decimal) -> Decimal:
    """A refund amount as sent to a backend: more than zero, at most two decimal places (never
    rounded silently: 10.005 is refused, not refunded as 10.00)."""
    value = Decimal(str(amount))
    if not value.is_finite() or value <= 0:
        raise Rejected(f"a refund must be more than 0, got {amount}")
    if value != value.quantize(CENT):
        raise Rejected(f"a refund has at most two decimal places, got {amount}")
    return value.quantize(CENT)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- results --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Subscription:
    id: str
    plan: str
    seats: int
    interval: str                   # month | year
    status: str                     # active | past_due | canceled ...
    renews_on: date | None          # for a canceled one: when access ends
    price_eur: Decimal              # net list price per interval, all seats

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "plan": self.plan, "seats": self.seats, "interval": self.interval,
                "status": self.status, "renews_on": self.renews_on.isoformat() if self.renews_on else None,
                "price_eur": str(self.price_eur)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subscription:
        return cls(str(data["id"]), str(data["plan"]), int(data["seats"]), str(data["interval"]),
                   str(data["status"]), _day(data.get("renews_on")), money(data["price_eur"]))


@dataclass(frozen=True)
class Customer:
    id: str
    email: str
    name: str
    tier: str
    company: str
    country: str
    subscriptions: tuple[Subscription, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "name": self.name, "tier": self.tier,
                "company": self.company, "country": self.country,
                "subscriptions": [s.to_dict() for s in self.subscriptions]}

    def details(self) -> dict[str, str]:
        """What the agent is told of the customer: tier, name, company, plans (the empty ones left out)."""
        found = {"tier": self.tier, "name": self.name, "company": self.company,
                 "plans": ", ".join(f"{sub.plan} ({sub.status})" for sub in self.subscriptions)}
        return {k: v for k, v in found.items() if v}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Customer:
        return cls(str(data["id"]), str(data["email"]), str(data["name"]), str(data["tier"]),
                   str(data.get("company") or ""), str(data.get("country") or ""),
                   tuple(Subscription.from_dict(s) for s in data.get("subscriptions") or ()))


@dataclass(frozen=True)
class Order:
    id: str
    customer_id: str
    customer_email: str
    date: datetime
    amount: Decimal                 # gross, as charged
    currency: str
    description: str
    status: str                     # paid | partially_refunded | refunded | failed ...
    refunded: Decimal               # refunded so far
    invoice_id: str | None

    @property
    def refundable(self) -> Decimal:
        return self.amount - self.refunded

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "customer_id": self.customer_id, "customer_email": self.customer_email,
                "date": self.date.isoformat(), "amount": str(self.amount), "currency": self.currency,
                "description": self.description, "status": self.status, "refunded": str(self.refunded),
                "invoice_id": self.invoice_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        return cls(str(data["id"]), str(data["customer_id"]), str(data["customer_email"]),
                   datetime.fromisoformat(data["date"]), money(data["amount"]), str(data["currency"]),
                   str(data.get("description") or ""), str(data["status"]), money(data.get("refunded") or 0),
                   data.get("invoice_id"))


@dataclass(frozen=True)
class Invoice:
    id: str
    order_id: str
    date: date
    amount: Decimal
    currency: str
    url: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "order_id": self.order_id, "date": self.date.isoformat(),
                "amount": str(self.amount), "currency": self.currency, "url": self.url}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Invoice:
        return cls(str(data["id"]), str(data["order_id"]), date.fromisoformat(data["date"]),
                   money(data["amount"]), str(data["currency"]), str(data["url"]))


@dataclass(frozen=True)
class Incident:
    id: str
    title: str
    status: str                     # investigating | identified | monitoring | resolved
    started_at: datetime
    resolved_at: datetime | None
    components: tuple[str, ...]
    public_update: str

    @property
    def active(self) -> bool:
        return self.status != "resolved"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status,
                "started_at": self.started_at.isoformat(),
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
                "components": list(self.components), "public_update": self.public_update}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        return cls(str(data["id"]), str(data["title"]), str(data["status"]),
                   datetime.fromisoformat(data["started_at"]), _moment(data.get("resolved_at")),
                   tuple(str(c) for c in data.get("components") or ()), str(data.get("public_update") or ""))


@dataclass(frozen=True)
class Refund:
    order_id: str
    amount: Decimal
    currency: str
    status: str                     # succeeded | pending (the payment provider still works on it)
    refund_id: str
    replayed: bool = False          # answered from the idempotency record: done by an earlier call

    def to_dict(self) -> dict[str, Any]:
        return {"refund_id": self.refund_id, "order_id": self.order_id, "amount": str(self.amount),
                "currency": self.currency, "status": self.status, "replayed": self.replayed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, replayed: bool = False) -> Refund:
        """`replayed` comes from how the backend answered, never from the stored body."""
        return cls(str(data["order_id"]), money(data["amount"]), str(data["currency"]), str(data["status"]),
                   str(data["refund_id"]), replayed)


@dataclass(frozen=True)
class Operation:
    """The outcome of a side effect without a richer type (resend_invoice, cancel_subscription)."""

    operation: str
    details: Mapping[str, Any] = field(default_factory=dict)
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, **self.details, "replayed": self.replayed}


# --- errors ---------------------------------------------------------------------------------

class BackendError(Exception):
    """A backend call failed; `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class NotFound(BackendError):
    """The order, invoice or subscription a side effect names does not exist (lookups return None)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class Rejected(BackendError):
    """A business rule refused the request (more than is refundable, wrong currency, already
    canceled...). Nothing changed; the message is fit to show a rep."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class IdempotencyConflict(BackendError):
    """The key was already used for a different request. Never retry: the caller derives keys
    wrongly, or someone is replaying keys; either way a human must look."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class Mismatch(BackendError):
    """The backend's answer contradicts the request: another order, amount, currency or target.
    Something may have happened that nobody asked for, so nothing is recorded as done and a human
    must look; never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class Unavailable(BackendError):
    """The backend did not answer usefully (timeout, connection refused, 5xx). For a side effect
    the outcome is unknown: it may have been applied. Calling again with the same idempotency key
    is safe and tells which: the backend applies it once or returns the original result."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


# --- checking answers against requests ----------------------------------------------------

REFUND_DONE = frozenset({"succeeded", "pending"})


def check_refund(refund: Refund, order_id: str, amount: Decimal, currency: str) -> Refund:
    """The refund the backend reports, if it is the one asked for and it went through."""
    asked = (order_id, money(amount), currency.strip().upper())
    got = (refund.order_id, refund.amount, refund.currency.strip().upper())
    if got != asked:
        raise Mismatch(f"asked to refund {asked[1]} {asked[2]} on order {asked[0]}, the backend answered "
                       f"{got[1]} {got[2]} on order {got[0]} ({refund.refund_id or 'no refund id'})")
    if refund.status not in REFUND_DONE:
        raise Rejected(f"the backend answered that refund {refund.refund_id or '?'} on order {order_id} is "
                       f"{refund.status!r}, not done")
    return refund


def check_operation(operation: Operation, field_name: str, target: str, status: str | None = None) -> Operation:
    """An operation's answer names the target asked for (and the state it should leave)."""
    got = str(operation.details.get(field_name, ""))
    if got != target:
        raise Mismatch(f"asked for {operation.operation} of {target}, the backend answered for {got or 'nothing'}")
    if status is not None and str(operation.details.get("status", "")) != status:
        raise Rejected(f"the backend answered that {target} is {operation.details.get('status')!r}, not {status}")
    return operation


# --- the interface --------------------------------------------------------------------------

class Backend(Protocol):
    """The company's systems as the action tools see them. Lookups return None (or an empty list)
    when nothing matches; side effects raise `NotFound`, `Rejected`, `IdempotencyConflict` or
    `Unavailable`. Implementations are safe to share between threads."""

    name: str

    def lookup_customer(self, email: str) -> Customer | None: ...

    def lookup_order(self, order_id: str) -> Order | None: ...

    def list_invoices(self, customer_email: str) -> list[Invoice]: ...

    def incidents(self, *, active_only: bool = False) -> list[Incident]: ...

    def resend_invoice(self, invoice_id: str, *, to: str | None, idempotency_key: str) -> Operation:
        """Email the invoice again to the address on file (`to=None`); another address may be
        refused (`Rejected`), because an invoice carries the customer's personal data."""

    def issue_refund(self, order_id: str, amount: Decimal, currency: str, reason: str, *,
                     idempotency_key: str) -> Refund: ...

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> Operation:
        """Cancel at the end of the paid period (`active_until` in the details)."""
