"""Templates and the filters they use. Autoescaping is on for every template: customer text is
always inserted as text, never as markup (nothing is marked safe except the charts, which
escape their own text)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.templating import Jinja2Templates

from mailagent.store.metrics import show

TEMPLATES = Path(str(files("mailagent.web") / "templates"))     # package data, as config.DATA
STATIC = Path(str(files("mailagent.web") / "static"))


def age(at: datetime | None, now: datetime | None = None) -> str:
    """How long ago, for a queue: 45s, 12m, 3h, 2d."""
    if at is None:
        return "-"
    seconds = max(0.0, ((now or datetime.now(UTC)) - at).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h {seconds % 3600 // 60:.0f}m"
    return f"{seconds // 86400:.0f}d {seconds % 86400 // 3600:.0f}h"


def when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "-"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def compact(value: Any, limit: int = 240) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def limit(value: float | Decimal | None) -> str:
    """A money limit of the policy: two decimals, or that none is set."""
    return "none set" if value is None else f"{Decimal(str(value)):.2f}"


def templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(age=age, when=when, pretty=pretty, compact=compact, show=show, limit=limit)
    return Jinja2Templates(env=env)
