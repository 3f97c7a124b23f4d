"""The Alembic history of the schema, shipped inside the package so that an installed Souq can
migrate its database without the source tree. Alembic is configured here in code: no
`alembic.ini` is read at run time (the one at the repository root serves `alembic revision`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration for migrating the database at `database_url`."""
    config = Config()
    # The value goes through configparser's interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate up to `revision`; a new SQLite database's folder is created first."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Migrate down to `revision` (`"base"` drops every table)."""
    command.downgrade(alembic_config(database_url), revision)
