"""Dependencies of the payments routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from souq.auth.deps import authenticate_request
from souq.auth.models import User
from souq.db import unit_of_work
from souq.deps import SessionFactoryDep
from souq.payments.stripe import StripeGateway


async def get_gateway(request: Request) -> StripeGateway:
    # async def: FastAPI runs a plain def dependency in the thread pool on every request.
    gateway: StripeGateway = request.app.state.stripe
    return gateway


async def get_caller(request: Request, factory: SessionFactoryDep) -> User | None:
    """The caller (or None when anonymous), authenticated in a unit of work of its own, for
    routes that talk to Stripe: no transaction of the request stays open across the call."""
    async with unit_of_work(factory) as session:
        auth = await authenticate_request(request, session)
    return auth.user if auth else None


StripeDep = Annotated[StripeGateway, Depends(get_gateway)]
CallerDep = Annotated[User | None, Depends(get_caller)]
