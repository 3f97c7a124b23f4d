"""The baseline for GET benchmarks: a bare FastAPI route returning a page of 20 listings of the
same shape as `GET /api/listings`, served the way `souq serve` serves Souq (same server code,
same worker count), with no database and no middleware.

    python -m bench.bare --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import FastAPI

PAGE: dict[str, Any] = {
    "data": [
        {
            "id": n,
            "storeId": 1,
            "name": f"Listing {n}",
            "description": "A bench listing.",
            "price": "25.00",
            "priceAmount": 2500,
            "currency": "usd",
            "stock": None,
            "active": True,
            "createdAt": "2026-11-29T00:00:00Z",
        }
        for n in range(20, 0, -1)
    ],
    "nextCursor": None,
}


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/listings")
    async def listings() -> dict[str, Any]:
        return PAGE

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from souq.serving import ServerOptions, serve

    serve(ServerOptions("bench.bare:create_app"), "127.0.0.1", args.port, args.workers)
