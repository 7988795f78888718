"""The demo backend's tables: sample company data that the action tools read and change. They
stand for the company's own systems, so they live apart from mailagent's schema: their own
metadata (`DemoTable.metadata`, not `SQLModel.metadata`), no Alembic migration, created by the
demo backend when it is first used, in the database `[actions] demo_database` names (by default
the main one, under the `demo_` prefix). A deployment with the HTTP backend never has them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from mailagent.store.models.base import Money, now


class DemoTable(SQLModel, registry=registry()):
    """The base of the demo tables: a registry, hence a metadata, of their own."""


class DemoCustomer(DemoTable, table=True):
    __tablename__ = "demo_customer"
    id: str = Field(primary_key=True)
    email: str = Field(unique=True)
    name: str
    tier: str
    company: str = ""
    country: str = ""
    created: str = ""


class DemoSubscription(DemoTable, table=True):
    __tablename__ = "demo_subscription"
    id: str = Field(primary_key=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    plan: str
    seats: int
    interval: str
    status: str
    renews_on: str = ""
    price_eur: Decimal = Field(default=Decimal(0), sa_type=Money)


class DemoOrder(DemoTable, table=True):
    __tablename__ = "demo_order"
    id: str = Field(primary_key=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    date: str
    amount: Decimal = Field(sa_type=Money)
    currency: str
    description: str = ""
    status: str
    refunded: Decimal = Field(default=Decimal(0), sa_type=Money)


class DemoInvoice(DemoTable, table=True):
    __tablename__ = "demo_invoice"
    id: str = Field(primary_key=True)
    order_id: str = Field(foreign_key="demo_order.id", index=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    date: str
    amount: Decimal = Field(sa_type=Money)
    currency: str
    url: str
    resent: int = 0


class DemoIncident(DemoTable, table=True):
    __tablename__ = "demo_incident"
    id: str = Field(primary_key=True)
    title: str
    status: str
    started_at: datetime
    resolved_at: datetime | None = None
    components: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    public_update: str = ""


class DemoOperation(DemoTable, table=True):
    """The demo backend's idempotency record: a replayed key returns the first response."""

    __tablename__ = "demo_operation"
    idempotency_key: str = Field(primary_key=True)
    operation: str
    request_sha256: str
    response: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)
