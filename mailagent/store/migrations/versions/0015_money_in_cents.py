"""money in cents; the demo backend's tables leave the schema

Amounts of money were floats. `action.amount` is whole minor units (cents) as an integer now,
read back as a two-decimal `Decimal` (`store.models.base.Money`), exact on SQLite and PostgreSQL.

The demo backend's tables (`demo_*`: sample company data standing for the company's own systems)
are no longer part of mailagent's schema: they have their own metadata and the demo backend
creates them, with amounts in cents too, when it is first used. Their rows are sample data: after
this upgrade, `mailagent backend seed` loads them again.

Revision ID: 0015
Revises: 0013
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEMO_TABLES = ("demo_invoice", "demo_order", "demo_subscription", "demo_operation", "demo_incident", "demo_customer")
DEMO_MONEY = {"demo_order": ("amount", "refunded"), "demo_invoice": ("amount",), "demo_subscription": ("price_eur",)}


def _action_amount(to_cents: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":     # batch mode copies the table: convert the values first
        op.execute("UPDATE action SET amount = ROUND(amount * 100)" if to_cents else
                   "UPDATE action SET amount = amount / 100.0")
    with op.batch_alter_table("action") as batch:
        batch.alter_column("amount", type_=sa.BigInteger() if to_cents else sa.Float(),
                           existing_type=sa.Float() if to_cents else sa.BigInteger(), existing_nullable=True,
                           postgresql_using="ROUND(amount * 100)::bigint" if to_cents else "amount / 100.0")


def upgrade() -> None:
    _action_amount(to_cents=True)
    for table in DEMO_TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table}")


def downgrade() -> None:
    """The demo tables back in the schema, empty, with float amounts as before."""
    from mailagent.store.models.demo import DemoTable

    _action_amount(to_cents=False)
    DemoTable.metadata.create_all(op.get_bind())
    for table, columns in DEMO_MONEY.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, type_=sa.Float(), existing_type=sa.BigInteger(),
                                   postgresql_using=f"{column} / 100.0")
