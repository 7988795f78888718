"""The demo backend: sample company data in our own database (the `Demo*` tables), so the action
tools work before any company API is connected, and with the same guarantees the HTTP contract
asks of one: each side effect and its idempotency record commit in one transaction, so a replayed
key finds the change done and answers with the first response."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from sqlalchemy import ColumnElement, Table, bindparam, func
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from mailagent import tomlfile
from mailagent.actions.backends.base import (
    Customer,
    IdempotencyConflict,
    Incident,
    Invoice,
    NotFound,
    Operation,
    Order,
    Refund,
    Rejected,
    Subscription,
    check_idempotency_key,
    money,
    refund_amount,
)
from mailagent.store import db, schema
from mailagent.store.models import (
    DemoCustomer,
    DemoIncident,
    DemoInvoice,
    DemoOperation,
    DemoOrder,
    DemoSubscription,
)
from mailagent.tomlfile import FileError, Problem

REFUNDABLE = ("paid", "partially_refunded")

_Target = TypeVar("_Target", DemoOrder, DemoInvoice, DemoSubscription)
_NOUNS: dict[type[SQLModel], str] = {DemoOrder: "order", DemoInvoice: "invoice", DemoSubscription: "subscription"}


class DemoBackend:
    """Reads and changes the demo tables at `url`; one short transaction per call."""

    name = "demo"

    def __init__(self, url: str) -> None:
        self.url = url
        schema.demo_tables(url)

    # lookups

    def lookup_customer(self, email: str) -> Customer | None:
        with db.reading(self.url) as s:
            conn = s.connection()
            row = conn.execute(_CUSTOMER, {"email": email.strip().lower()}).first()
            if row is None:
                return None
            subscriptions = conn.execute(_SUBSCRIPTIONS, {"customer": row.id}).all()
        return Customer(row.id, row.email, row.name, row.tier, row.company, row.country,
                        tuple(_subscription(sub) for sub in subscriptions))

    def lookup_order(self, order_id: str) -> Order | None:
        with db.reading(self.url) as s:
            found = s.exec(select(DemoOrder, DemoCustomer.email)
                           .join(DemoCustomer, DemoCustomer.id == DemoOrder.customer_id)
                           .where(DemoOrder.id == order_id)).first()
            invoice_id = s.exec(select(DemoInvoice.id).where(DemoInvoice.order_id == order_id)
                                .order_by(DemoInvoice.id)).first()
        if found is None:
            return None
        row, email = found
        return Order(row.id, row.customer_id, email, dt.datetime.fromisoformat(row.date), money(row.amount),
                     row.currency, row.description, row.status, money(row.refunded), invoice_id)

    def list_invoices(self, customer_email: str) -> list[Invoice]:
        with db.reading(self.url) as s:
            rows = s.exec(select(DemoInvoice).join(DemoCustomer, DemoCustomer.id == DemoInvoice.customer_id)
                          .where(_email_is(customer_email))
                          .order_by(DemoInvoice.date.desc(), DemoInvoice.id.desc())).all()
        return [Invoice(r.id, r.order_id, dt.date.fromisoformat(r.date), money(r.amount), r.currency, r.url)
                for r in rows]

    def incidents(self, *, active_only: bool = False) -> list[Incident]:
        query = select(DemoIncident).order_by(DemoIncident.started_at.desc(), DemoIncident.id)
        if active_only:
            query = query.where(DemoIncident.status != "resolved")
        with db.reading(self.url) as s:
            rows = s.exec(query).all()
        return [Incident(r.id, r.title, r.status, r.started_at, r.resolved_at, tuple(r.components),
                         r.public_update) for r in rows]

    # side effects

    def resend_invoice(self, invoice_id: str, *, to: str | None, idempotency_key: str) -> Operation:
        recipient = to.strip().lower() if to else None
        request = {"invoice_id": invoice_id, "to": recipient}

        def resend(s: Session, invoice: DemoInvoice) -> dict[str, Any]:
            on_file = s.get_one(DemoCustomer, invoice.customer_id).email
            if recipient not in (None, on_file.lower()):
                raise Rejected(f"invoice {invoice_id} can only be sent to the customer's address on file")
            invoice.resent += 1
            s.add(invoice)
            return {"invoice_id": invoice.id, "sent_to": on_file}

        details, replayed = self._once(idempotency_key, "resend_invoice", request, DemoInvoice, invoice_id, resend)
        return Operation("resend_invoice", details, replayed)

    def issue_refund(self, order_id: str, amount: Decimal, currency: str, reason: str, *,
                     idempotency_key: str) -> Refund:
        amount, currency = refund_amount(amount), currency.strip().upper()
        request = {"order_id": order_id, "amount": str(amount), "currency": currency, "reason": reason}

        def refund(s: Session, order: DemoOrder) -> dict[str, Any]:
            if order.status not in REFUNDABLE:
                raise Rejected(f"order {order.id} is {order.status}: only paid orders can be refunded")
            if currency != order.currency:
                raise Rejected(f"order {order.id} was charged in {order.currency}, not {currency}")
            refundable = money(order.amount) - money(order.refunded)
            if amount > refundable:
                raise Rejected(f"{amount} {currency} is more than the {refundable} {currency} "
                               f"still refundable on order {order.id}")
            order.refunded = money(order.refunded) + amount
            order.status = "refunded" if amount == refundable else "partially_refunded"
            s.add(order)
            return Refund(order.id, amount, currency, "succeeded", f"re_{uuid.uuid4().hex[:24]}").to_dict()

        response, replayed = self._once(idempotency_key, "issue_refund", request, DemoOrder, order_id, refund)
        return Refund.from_dict(response, replayed=replayed)

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> Operation:
        def cancel(s: Session, subscription: DemoSubscription) -> dict[str, Any]:
            if subscription.status == "canceled":
                raise Rejected(f"subscription {subscription.id} is already canceled")
            subscription.status = "canceled"
            s.add(subscription)
            return {"subscription_id": subscription.id, "status": "canceled",
                    "active_until": subscription.renews_on or None}

        details, replayed = self._once(idempotency_key, "cancel_subscription", {"subscription_id": subscription_id},
                                       DemoSubscription, subscription_id, cancel)
        return Operation("cancel_subscription", details, replayed)

    def _once(self, key: str, operation: str, request: dict[str, Any], target: type[_Target], target_id: str,
              apply: Callable[[Session, _Target], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Apply a side effect at most once per key: `(response, replayed)`.

        The target row is locked first, so concurrent calls on it (same key or not) run one after
        the other and each sees the record the previous one committed. A refusal (`Rejected`,
        `NotFound`) is not recorded: it changed nothing, and asking again is evaluated again."""
        check_idempotency_key(key)
        digest = hashlib.sha256(json.dumps({"operation": operation, **request}, sort_keys=True,
                                           separators=(",", ":")).encode()).hexdigest()
        try:
            with db.session(self.url) as s:
                row = s.exec(select(target).where(target.id == target_id).with_for_update()).first()
                done = s.get(DemoOperation, key)
                if done is not None:
                    if done.request_sha256 != digest:
                        raise IdempotencyConflict(f"idempotency key {key!r} was already used for a different "
                                                  f"{done.operation} request")
                    return done.response, True
                if row is None:
                    raise NotFound(f"there is no {_NOUNS[target]} {target_id!r}")
                response = apply(s, row)
                s.add(DemoOperation(idempotency_key=key, operation=operation, request_sha256=digest,
                                    response=response))
                s.flush()
        except IntegrityError:      # the same key committed meanwhile for another target
            raise IdempotencyConflict(f"idempotency key {key!r} was used at the same time for a "
                                      f"different request") from None
        return response, False


def _email_is(email: str) -> ColumnElement[bool]:
    return func.lower(DemoCustomer.email) == email.strip().lower()


# A draft looks its customer up first: SQLAlchemy Core statements built once (compiled once per engine).
_customer: Table = DemoCustomer.__table__  # type: ignore[assignment]
_subscriptions: Table = DemoSubscription.__table__  # type: ignore[assignment]
_CUSTOMER = core_select(_customer).where(func.lower(_customer.c.email) == bindparam("email"))
_SUBSCRIPTIONS = core_select(_subscriptions).where(_subscriptions.c.customer_id == bindparam("customer")) \
    .order_by(_subscriptions.c.id)


def _subscription(row: Any) -> Subscription:
    renews_on = dt.date.fromisoformat(row.renews_on) if row.renews_on else None
    return Subscription(row.id, row.plan, row.seats, row.interval, row.status, renews_on, money(row.price_eur))


# --- seeding from a TOML file ---------------------------------------------------------------

Money = Annotated[Decimal, Field(ge=0, decimal_places=2)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(min_length=1)]


class _CustomerRow(_Row):
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    name: str
    tier: str
    company: str = ""
    country: str = ""
    created: dt.date | None = None


class _SubscriptionRow(_Row):
    customer_id: str
    plan: str
    seats: Annotated[int, Field(ge=0)]
    interval: str
    status: str
    renews_on: dt.date | None = None
    price_eur: Money = Decimal(0)


class _OrderRow(_Row):
    customer_id: str
    date: AwareDatetime
    amount: Money
    currency: Currency
    description: str = ""
    status: str
    refunded: Money = Decimal(0)

    @model_validator(mode="before")
    @classmethod
    def _refunded_in_full(cls, data: Any) -> Any:
        """A `refunded` order that does not say how much was refunded was refunded in full."""
        if isinstance(data, dict) and data.get("status") == "refunded" and "refunded" not in data:
            return {**data, "refunded": data.get("amount")}
        return data


class _InvoiceRow(_Row):
    order_id: str
    customer_id: str
    date: dt.date
    amount: Money
    currency: Currency
    url: str
    resent: Annotated[int, Field(ge=0)] = 0


class _IncidentRow(_Row):
    title: str
    status: str
    started_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    components: list[str] = []
    public_update: str = ""


class DemoData(BaseModel):
    """A demo data file. `as_of` is the day its dates were written for: they are seeded that many
    days before the seeding day as they were before `as_of`, so the sample stays as recent as it
    was written (an order of "last week", a refund window still open) whenever it is seeded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    as_of: dt.date | None = None
    customers: list[_CustomerRow] = []
    subscriptions: list[_SubscriptionRow] = []
    orders: list[_OrderRow] = []
    invoices: list[_InvoiceRow] = []
    incidents: list[_IncidentRow] = []


_TABLES: tuple[tuple[str, type[SQLModel]], ...] = (      # in foreign-key order
    ("customers", DemoCustomer), ("subscriptions", DemoSubscription), ("orders", DemoOrder),
    ("invoices", DemoInvoice), ("incidents", DemoIncident),
)


def seed(url: str, path: str | Path) -> dict[str, int]:
    """Load a demo data file (like `examples/backend.toml`) in one transaction: rows per table.

    Rows are upserted by id, so seeding again restores the file's values (a demo reset, with dates
    as of the new seeding day) without duplicating anything; rows not in the file, and idempotency
    records, stay. A bad file changes nothing and raises `FileError` naming the file, line and key
    of every problem."""
    schema.demo_tables(url)
    data = read(path)
    with db.session(url) as s:
        for name, model in _TABLES:
            if rows := [_columns(model, row) for row in getattr(data, name)]:
                insert = db.insert(s, model).values(rows)
                s.execute(insert.on_conflict_do_update(
                    index_elements=["id"], set_={c: insert.excluded[c] for c in rows[0] if c != "id"}))
    return {name: len(getattr(data, name)) for name, _ in _TABLES}


def read(path: str | Path) -> DemoData:
    """A demo data file, checked, with its dates moved from its `as_of` day to today (UTC)."""
    path = Path(path)
    text, raw = tomlfile.read(path)
    try:
        data = DemoData.model_validate(raw)
    except ValidationError as exc:
        raise FileError(tomlfile.problems_from(str(path), text, exc)) from None
    lines = tomlfile.key_lines(text)
    if problems := [Problem(str(path), tomlfile.line_of(lines, loc), tomlfile.dotted(loc), message)
                    for loc, message in _inconsistencies(data)]:
        raise FileError(problems)
    if data.as_of is None:
        return data
    now = dt.datetime.now(dt.UTC)
    days = now.date() - data.as_of
    return data.model_copy(update={name: [_moved(row, days, now) for row in getattr(data, name)]
                                   for name, _ in _TABLES})


_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def _moved(row: _Row, days: dt.timedelta, now: dt.datetime) -> _Row:
    """The row `days` later: its date and time fields, and the days written in its text (an
    order's description names its billing period). Ids stay as they are: mail quotes them. A
    moment that would lie ahead of `now` goes a day earlier: seeded at 07:00, the incident the
    file starts "this morning" at 08:42 started yesterday, not in an hour."""
    def later(match: re.Match[str]) -> str:
        try:
            return (dt.date.fromisoformat(match[0]) + days).isoformat()
        except ValueError:
            return match[0]

    update: dict[str, Any] = {}
    for name, value in row:
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            update[name] = value + days - (dt.timedelta(days=1) if aware + days > now else dt.timedelta(0))
        elif isinstance(value, dt.date):
            update[name] = value + days
        elif isinstance(value, str) and not name.endswith("id"):
            update[name] = _DAY.sub(later, value)
    return row.model_copy(update=update)


def _inconsistencies(data: DemoData) -> list[tuple[tomlfile.Loc, str]]:
    """Duplicates and dangling references, which the database would refuse without saying where."""
    found: list[tuple[tomlfile.Loc, str]] = []
    for table, key in (("customers", "id"), ("customers", "email"), ("subscriptions", "id"),
                       ("orders", "id"), ("invoices", "id"), ("incidents", "id")):
        first: dict[str, int] = {}
        for index, row in enumerate(getattr(data, table)):
            value = getattr(row, key)
            if value in first:
                found.append(((table, index, key), f"{value!r} is also used by {table}[{first[value]}]"))
            first.setdefault(value, index)
    customers = {c.id for c in data.customers}
    orders = {o.id: o for o in data.orders}
    for table, rows in (("subscriptions", data.subscriptions), ("orders", data.orders)):
        for index, row in enumerate(rows):
            if row.customer_id not in customers:
                found.append(((table, index, "customer_id"), f"no customer {row.customer_id!r} in this file"))
    for index, invoice in enumerate(data.invoices):
        order = orders.get(invoice.order_id)
        if order is None:
            found.append((("invoices", index, "order_id"), f"no order {invoice.order_id!r} in this file"))
        elif order.customer_id != invoice.customer_id:
            found.append((("invoices", index, "customer_id"),
                          f"order {order.id} belongs to {order.customer_id}, not {invoice.customer_id}"))
    return found


def _columns(model: type[SQLModel], row: BaseModel) -> dict[str, Any]:
    """A file row as column values: money as float, dates as ISO text where the column is text."""
    values: dict[str, Any] = {}
    for name, value in row.model_dump().items():
        text_column = model.model_fields[name].annotation is str
        if isinstance(value, Decimal):
            value = float(value)
        elif isinstance(value, dt.date) and text_column:
            value = value.isoformat()
        elif value is None and text_column:
            value = ""
        values[name] = value
    return values
