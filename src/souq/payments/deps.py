from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from souq.payments.stripe import StripeGateway


async def get_gateway(request: Request) -> StripeGateway:
    # async def: FastAPI runs a plain def dependency in the thread pool on every request.
    gateway: StripeGateway = request.app.state.stripe
    return gateway


StripeDep = Annotated[StripeGateway, Depends(get_gateway)]
