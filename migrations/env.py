"""Alembic environment: used by `pressmon db upgrade`, `pressmon run` and `alembic` itself."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import engine_from_config, pool

from monitor.store.db import normalize_url
from monitor.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    url = normalize_url(os.environ.get("PRESSMON_DATABASE_URL") or config.get_main_option("sqlalchemy.url"))
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    section = config.get_section(config.config_ini_section, {})
    if os.environ.get("PRESSMON_DATABASE_URL"):
        section["sqlalchemy.url"] = os.environ["PRESSMON_DATABASE_URL"]
    section["sqlalchemy.url"] = normalize_url(section["sqlalchemy.url"])
    connectable = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
