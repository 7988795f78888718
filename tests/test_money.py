"""Money is exact end to end: Decimal in Python, whole cents in the database (SQLite and
PostgreSQL), strings like "8.00" in JSON; and the demo backend's tables live apart from
mailagent's schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import MetaData, Table, inspect, text
from sqlmodel import SQLModel

from mailagent.actions.backends import DemoBackend, demo_url, make_backend
from mailagent.actions.backends.demo import seed
from mailagent.policy.facts import ActionFacts
from mailagent.store import db, schema
from mailagent.store.models import DemoOrder

from .conftest import make_settings
from .support.actions_server import SAMPLE


def test_amounts_are_cents_in_the_database_and_exact_decimals_in_python(any_db_url: str) -> None:
    seed(any_db_url, SAMPLE)
    demo = DemoBackend(any_db_url)
    with db.engine(any_db_url).connect() as conn:
        stored = conn.execute(text("SELECT amount, refunded FROM demo_order WHERE id = 'NN-1003'")).one()
    assert tuple(stored) == (9520, 0)                                    # 95.20 EUR as whole cents
    for n in range(3):                                                   # 0.10 three times is 0.30, not 0.30000000000000004
        demo.issue_refund("NN-1003", Decimal("0.10"), "EUR", "test", idempotency_key=f"money-{n}")
    order = demo.lookup_order("NN-1003")
    assert order is not None and order.refunded == Decimal("0.30") and order.amount - order.refunded == Decimal("94.90")
    with db.session(any_db_url) as s:
        row = s.get(DemoOrder, "NN-1003")
        assert row is not None and row.refunded == Decimal("0.30") and str(row.amount) == "95.20"
        row.amount = Decimal("1.005")                                    # never rounded silently
        with pytest.raises(Exception, match="at most two decimal places"):
            s.flush()


def test_policy_facts_keep_money_as_exact_strings_in_json() -> None:
    facts = ActionFacts(tool="issue_refund", amount=Decimal("8.00"), currency="EUR",
                        refunded_customer_today=Decimal("0.30"))
    stored = json.loads(json.dumps(facts.to_dict()))
    assert stored["amount"] == "8.00" and stored["refunded_customer_today"] == "0.30"
    assert ActionFacts.from_dict(stored).amount == Decimal("8.00")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migration_0015_turns_float_amounts_into_cents_and_takes_the_demo_tables_out(
        engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}" if engine == "sqlite" else request.getfixturevalue("fresh_pg")
    command.upgrade(schema.alembic_config(url), "0013")
    with db.engine(url).begin() as conn:                        # one row per table, as 0013 had them
        for table, given in (("conversation", {}), ("message", {}), ("draft", {}),
                             ("action", {"amount": 19.99, "tool": "issue_refund"})):
            conn.execute(Table(table, MetaData(), autoload_with=conn).insert().values(_filled(conn, table, given)))
    command.upgrade(schema.alembic_config(url), "head")
    with db.engine(url).connect() as conn:
        assert conn.execute(text("SELECT amount FROM action")).scalar() == 1999
    from mailagent.store.models import Action

    with db.reading(url) as s:
        action = s.get(Action, 1)
        assert action is not None and action.amount == Decimal("19.99")
    assert not [t for t in inspect(db.engine(url)).get_table_names() if t.startswith("demo_")]
    db.dispose(url)


def _filled(conn: Any, table: str, given: dict[str, Any]) -> dict[str, Any]:
    """Every required column of a reflected table, with a plain value of its type."""
    values: dict[str, Any] = {}
    for column in Table(table, MetaData(), autoload_with=conn).columns:
        if column.name in given or column.nullable or column.server_default is not None:
            continue
        kind = column.type.python_type if not isinstance(column.type, sa.JSON) else dict
        values[column.name] = {int: 1, str: "x", bytes: b"x", bool: False, float: 0.0, dict: {},
                               datetime: datetime(2026, 1, 1, tzinfo=UTC)}[kind]
    return {**values, **given}


def test_the_demo_tables_are_not_in_the_schema_and_can_live_in_a_database_of_their_own(
        sqlite_url: str, tmp_path: Path) -> None:
    assert not [name for name in SQLModel.metadata.tables if name.startswith("demo_")]
    assert not [t for t in inspect(db.engine(sqlite_url)).get_table_names() if t.startswith("demo_")]
    own = f"sqlite:///{tmp_path / 'demo-backend.db'}"
    settings = make_settings(sqlite_url, actions={"demo_database": own})
    assert demo_url(settings) == own
    seed(demo_url(settings), SAMPLE)
    assert make_backend(settings).lookup_order("NN-1003") is not None
    assert "demo_order" in inspect(db.engine(own)).get_table_names()
    assert not [t for t in inspect(db.engine(sqlite_url)).get_table_names() if t.startswith("demo_")]
    db.dispose(own)
