"""The engine and the session factory. The edge (a request, a CLI command, a webhook
delivery) opens a session and commits once; services only `flush()`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:
    from souq.config import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def async_url(database_url: str) -> URL:
    """The SQLAlchemy URL for the async driver of the engine `database_url` names."""
    url = make_url(database_url)
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in ("sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"):
        return url.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported DATABASE_URL scheme {url.drivername!r}")


def is_pooled(url: URL, pooled: bool | None) -> bool:
    """Whether the URL points at a PgBouncer-style pooler in transaction mode."""
    if pooled is not None:
        return pooled
    return "-pooler." in (url.host or "")


@dataclass(frozen=True)
class PoolOptions:
    """The PostgreSQL connection pool of one process (see Settings.database_pool_size)."""

    size: int = 20
    max_overflow: int = 0
    timeout_seconds: float = 30.0


def engine_options(
    url: URL, pooled: bool | None = None, pool: PoolOptions | None = None
) -> dict[str, Any]:
    pool = pool or PoolOptions()
    options: dict[str, Any] = {
        "pool_size": pool.size,
        "max_overflow": pool.max_overflow,
        "pool_timeout": pool.timeout_seconds,
    }
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": 30}
        return options
    # A connection the server or a pooler closed while idle is replaced, not handed out.
    options["pool_pre_ping"] = True
    if is_pooled(url, pooled):
        # Server-side prepared statements do not survive transaction pooling.
        options["connect_args"] = {"prepare_threshold": None}
    return options


def create_engine(
    database_url: str, pooled: bool | None = None, pool: PoolOptions | None = None
) -> AsyncEngine:
    url = async_url(database_url)
    engine = create_async_engine(url, **engine_options(url, pooled, pool))
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


def engine_for(settings: Settings) -> AsyncEngine:
    """The engine the settings describe: URL, pooler mode and pool size."""
    return create_engine(
        settings.database_url,
        settings.database_pooled,
        PoolOptions(
            size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            timeout_seconds=settings.database_pool_timeout_seconds,
        ),
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take the write lock at BEGIN so concurrent writers queue instead of failing
        # with "database is locked" halfway through a transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; `info` is copied into each session's `info` (the app puts its URL
    and the hook that starts the senders there, see notifications/service.py)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info or {})


@asynccontextmanager
async def unit_of_work(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit if the block succeeds, roll back everything if it fails."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
