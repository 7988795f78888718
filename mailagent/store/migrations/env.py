"""Alembic environment: the URL comes from `schema.alembic_config`, the schema from the models."""

from alembic import context
from sqlalchemy import pool
from sqlmodel import SQLModel, create_engine

from mailagent.store.knowledge import is_search_index
from mailagent.store import models  # noqa: F401  (registers the tables)

config = context.config
url = config.get_main_option("sqlalchemy.url")


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Autogenerate compares the schema with the models, which leave out the full-text index."""
    return not is_search_index(name, type_, parent_names)


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=SQLModel.metadata, render_as_batch=True,
                          literal_binds=True, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=SQLModel.metadata,
                          render_as_batch=True, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
