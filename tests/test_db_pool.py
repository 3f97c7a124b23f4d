"""The connection pool keeps its connections: requests beyond the pool wait for one instead of
opening (and then closing) a connection each."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from souq.config import Settings
from souq.db import engine_for, session_factory, unit_of_work


async def _rounds(settings: Settings, concurrency: int, rounds: int) -> list[int]:
    """Connections opened by the end of each round of `concurrency` simultaneous units of work."""
    engine = engine_for(settings)
    opened = 0

    def count(*_: Any) -> None:
        nonlocal opened
        opened += 1

    event.listen(engine.sync_engine, "connect", count)
    factory = session_factory(engine)
    start = asyncio.Event()

    async def work() -> None:
        async with unit_of_work(factory) as session:
            await start.wait()
            await session.execute(sa.text("SELECT 1"))
            await asyncio.sleep(0.05)

    seen = []
    try:
        for _ in range(rounds):
            start.clear()
            tasks = [asyncio.create_task(work()) for _ in range(concurrency)]
            await asyncio.sleep(0.05)
            start.set()
            await asyncio.gather(*tasks)
            seen.append(opened)
    finally:
        await engine.dispose()
    return seen


def test_busy_workers_reuse_their_connections(database_url: str) -> None:
    settings = Settings(_env_file=None, database_url=database_url, database_pool_size=8)
    # Twice as many units of work at once as the pool holds: they queue for its connections.
    opened = asyncio.run(_rounds(settings, concurrency=16, rounds=3))
    assert opened[0] <= 8
    assert opened[-1] == opened[0]


def test_overflow_connections_are_opened_again_for_every_burst(database_url: str) -> None:
    settings = Settings(
        _env_file=None, database_url=database_url, database_pool_size=4, database_max_overflow=4
    )
    opened = asyncio.run(_rounds(settings, concurrency=8, rounds=3))
    # What DATABASE_MAX_OVERFLOW costs: the 4 overflow connections are closed when returned and
    # opened again in the next burst.
    assert opened == [8, 12, 16]
