"""Where the action tools read and change company data: the demo tables or the company's API."""

from __future__ import annotations

import functools
import logging

from mailagent.actions.backends.base import (
    Backend,
    BackendError,
    Customer,
    IdempotencyConflict,
    Incident,
    Invoice,
    Mismatch,
    NotFound,
    Operation,
    Order,
    Refund,
    Rejected,
    Subscription,
    Unavailable,
)
from mailagent.actions.backends.demo import DemoBackend
from mailagent.actions.backends.http import HttpBackend
from mailagent.config import Actions, ConfigError, Settings
from mailagent.tomlfile import Problem

log = logging.getLogger(__name__)

__all__ = [
    "Backend", "BackendError", "Customer", "DemoBackend", "HttpBackend", "IdempotencyConflict", "Incident",
    "Invoice", "Mismatch", "NotFound", "Operation", "Order", "Refund", "Rejected", "Subscription", "Unavailable",
    "customer_of", "make_backend",
]


def make_backend(settings: Settings) -> Backend:
    """The backend `[actions] backend` names: one per configuration per process, shared (the HTTP
    one holds a connection pool, like `db.engine`), so callers need not keep or close it."""
    return _backend(settings.source, demo_url(settings), settings.actions)


def demo_url(settings: Settings) -> str:
    """The database of the demo backend's tables (`[actions] demo_database`, else the main one)."""
    return settings.actions.demo_database or settings.database.url


def customer_of(settings: Settings, address: str) -> Customer | None:
    """What the backend knows of a customer (plan, tier); None when unknown or the backend did
    not answer (a draft can be written without it)."""
    try:
        return make_backend(settings).lookup_customer(address)
    except BackendError as exc:
        log.warning("customer lookup failed: %s", exc)
        return None


@functools.cache
def _backend(source: str, database_url: str, actions: Actions) -> Backend:
    if actions.backend == "demo":
        return DemoBackend(database_url)
    if actions.http is None:
        raise ConfigError([Problem(source, None, "actions.http",
                                   'backend = "http" needs an [actions.http] table with base_url')])
    return HttpBackend(actions.http)
