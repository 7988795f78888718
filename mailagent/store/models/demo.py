"""The demo backend's tables: sample company data that the action tools read and change. They
stand for the company's own systems and are not part of mailagent's pipeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from mailagent.store.models.base import now


class DemoCustomer(SQLModel, table=True):
    __tablename__ = "demo_customer"
    id: str = Field(primary_key=True)
    email: str = Field(unique=True)
    name: str
    tier: str
    company: str = ""
    country: str = ""
    created: str = ""


class DemoSubscription(SQLModel, table=True):
    __tablename__ = "demo_subscription"
    id: str = Field(primary_key=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    plan: str
    seats: int
    interval: str
    status: str
    renews_on: str = ""
    price_eur: float = 0.0


class DemoOrder(SQLModel, table=True):
    __tablename__ = "demo_order"
    id: str = Field(primary_key=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    date: str
    amount: float
    currency: str
    description: str = ""
    status: str
    refunded: float = 0.0


class DemoInvoice(SQLModel, table=True):
    __tablename__ = "demo_invoice"
    id: str = Field(primary_key=True)
    order_id: str = Field(foreign_key="demo_order.id", index=True)
    customer_id: str = Field(foreign_key="demo_customer.id", index=True)
    date: str
    amount: float
    currency: str
    url: str
    resent: int = 0


class DemoIncident(SQLModel, table=True):
    __tablename__ = "demo_incident"
    id: str = Field(primary_key=True)
    title: str
    status: str
    started_at: datetime
    resolved_at: datetime | None = None
    components: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    public_update: str = ""


class DemoOperation(SQLModel, table=True):
    """The demo backend's idempotency record: a replayed key returns the first response."""

    __tablename__ = "demo_operation"
    idempotency_key: str = Field(primary_key=True)
    operation: str
    request_sha256: str
    response: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)
