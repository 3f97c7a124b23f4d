"""Request-scoped dependencies shared by every feature: settings and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.config import Settings
from souq.db import unit_of_work


async def get_settings_dep(request: Request) -> Settings:
    # async def: FastAPI runs a plain def dependency in the thread pool on every request.
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed once when the route returns, rolled back on any
    error. Function scope makes the commit happen before the response is sent."""
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


async def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    """For flows that must run several short units of work (around a Stripe call, which never
    waits inside an open transaction): the factory each step opens its own unit of work with."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return factory


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
