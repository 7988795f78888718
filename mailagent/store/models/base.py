"""What every table module shares."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.types import TypeDecorator


def now() -> datetime:
    return datetime.now(UTC)


class Money(TypeDecorator[Decimal]):
    """An amount of money: a `Decimal` with two decimal places in Python, whole minor units
    (cents) as an integer in the database, so SQLite and PostgreSQL keep it exactly and sums are
    exact. An amount with more than two decimal places is refused, never rounded."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        amount = Decimal(str(value))
        cents = amount.scaleb(2)
        if cents != cents.to_integral_value():
            raise ValueError(f"an amount of money has at most two decimal places, got {value}")
        return int(cents)

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(int(value)).scaleb(-2).quantize(CENT)


CENT = Decimal("0.01")
