from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from souq.payments.stripe import StripeGateway


def get_gateway(request: Request) -> StripeGateway:
    gateway: StripeGateway = request.app.state.stripe
    return gateway


StripeDep = Annotated[StripeGateway, Depends(get_gateway)]
