"""Helpdesks as a channel: one module per helpdesk kind behind `base.Helpdesk`.

A kind's module provides `verify` (the pure webhook check), `setup` (what its admin creates) and
`CLIENT` (the API client class). Adding Freshdesk or Front is one module, one entry in `KINDS` and
its config kind. Nothing here touches the database: the pipeline keeps the state."""

from __future__ import annotations

import importlib
from types import ModuleType

from mailagent.config import Settings
from mailagent.helpdesks.base import Helpdesk, Verifier
from mailagent.helpdesks.budget import Budget, LocalBudget, RedisBudget

KINDS = {"zendesk": "mailagent.helpdesks.zendesk", "helpscout": "mailagent.helpdesks.helpscout"}

HEADROOM = 1.1
"""Each request is counted for 10% longer than the helpdesk's window: a request that waited for
a thread or the network after taking its slot still arrives inside our count, not in the next
window of the helpdesk's (a 60 s window is counted for 66 s)."""

_local_budgets: dict[str, LocalBudget] = {}


def module(kind: str) -> ModuleType:
    return importlib.import_module(KINDS[kind])


def verifier(kind: str) -> Verifier:
    return module(kind).verify  # type: ignore[no-any-return]


def budget(settings: Settings, name: str) -> Budget:
    """The account's shared budget: in Redis when the workers share a Redis broker, else in this
    process (the in-process broker has no other process to share with)."""
    desk = settings.helpdesk(name)
    if settings.broker.url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBudget(settings.broker.url, f"{settings.broker.namespace}:helpdesk-budget:{name}",
                           desk.budget_window_seconds * HEADROOM)
    return _local_budgets.setdefault(name, LocalBudget(desk.budget_window_seconds * HEADROOM))


def client(settings: Settings, name: str, **api: object) -> Helpdesk:
    """The API client of `[helpdesks.NAME]` (close it when done)."""
    desk = settings.helpdesk(name)
    cls = module(desk.kind).CLIENT
    return cls(desk, name, budget(settings, name), **api)  # type: ignore[no-any-return]
