"""Storage, the source of truth: engines and transactions (`db`), migrations (`schema`), the tables
(`models/`) and one module per area of queries. Only this package talks SQL."""
