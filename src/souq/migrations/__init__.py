"""The Alembic history of the schema, shipped inside the package so that an installed Souq can
migrate its database without the source tree. Alembic is configured here in code: no
`alembic.ini` is read at run time (the one at the repository root serves `alembic revision`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str, secret_key: str | None = None) -> Config:
    """Alembic's configuration for migrating the database at `database_url`; `secret_key`
    (default: the settings') seals what a migration stores sealed."""
    config = Config()
    # The value goes through configparser's interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["database_url"] = database_url
    if secret_key is not None:
        config.attributes["secret_key"] = secret_key
    return config


def upgrade(database_url: str, revision: str = "head", *, secret_key: str | None = None) -> None:
    """Migrate up to `revision`; a new SQLite database's folder is created first. On
    PostgreSQL the job engine's schema (procrastinate's tables and functions) is created too,
    once: it is procrastinate's, versioned with its package, not part of Souq's history."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url, secret_key), revision)
    if url.get_backend_name() == "postgresql":
        from souq.jobs_postgres import apply_schema

        asyncio.run(apply_schema(database_url))


def downgrade(database_url: str, revision: str, *, secret_key: str | None = None) -> None:
    """Migrate down to `revision` (`"base"` drops every table, the job engine's too)."""
    command.downgrade(alembic_config(database_url, secret_key), revision)
    if revision == "base" and make_url(database_url).get_backend_name() == "postgresql":
        from souq.jobs_postgres import drop_schema

        asyncio.run(drop_schema(database_url))
