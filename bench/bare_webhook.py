"""The floor for webhook acknowledgement: a bare FastAPI route that does only what an ack must
(verify the Stripe signature with the SDK, parse the JSON once, one INSERT … ON CONFLICT DO
NOTHING into the inbox through SQLAlchemy Core, one transaction), served the way `souq serve`
serves Souq (same server code, uvloop and httptools), with no middleware, no session, no job.
Whatever Souq's ack costs above this is Souq's; this is the limit of Python on the machine.

    DATABASE_URL=postgresql://… STRIPE_WEBHOOK_SECRET=whsec_…
        python -m bench.bare_webhook --port 8002
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from typing import Any

import stripe
from fastapi import FastAPI, Request, Response
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench import bare

INSERT = text(
    "INSERT INTO stripe_event "
    "(stripe_event_id, type, account, created, payload, received_at, attempts) "
    "VALUES (:id, :type, :account, :created, CAST(:payload AS json), :now, 0) "
    "ON CONFLICT (stripe_event_id) DO NOTHING"
)


def create_app() -> FastAPI:
    app = bare.create_app()  # for its /healthz
    url = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+psycopg")
    engine = create_async_engine(url, pool_size=20, max_overflow=0, pool_pre_ping=True)
    secret = os.environ["STRIPE_WEBHOOK_SECRET"]

    @app.post("/api/stripe/webhook")
    async def webhook(request: Request) -> Response:
        body = await request.body()
        try:
            stripe.WebhookSignature.verify_header(
                body.decode("utf-8"), request.headers.get("stripe-signature", ""), secret, 300
            )
        except stripe.SignatureVerificationError:
            return Response(status_code=400)
        event: dict[str, Any] = json.loads(body)
        async with engine.begin() as connection:
            await connection.execute(
                INSERT,
                {
                    "id": event["id"],
                    "type": event["type"],
                    "account": event.get("account"),
                    "created": event["created"],
                    "payload": body.decode("utf-8"),
                    "now": datetime.now(UTC),
                },
            )
        return Response(b'{"received":true}', media_type="application/json")

    return app


if __name__ == "__main__":
    from souq.serving import ServerOptions, serve

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve(ServerOptions("bench.bare_webhook:create_app"), "127.0.0.1", parser.parse_args().port, 1)
