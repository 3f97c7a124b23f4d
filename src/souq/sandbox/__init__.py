"""souq.sandbox: a stateful local Stripe that the official SDK talks to unchanged.

    sandbox = Sandbox(SandboxConfig(db_path=Path("sandbox.db"), public_url="http://host/_sandbox"))
    main_app.mount("/_sandbox", sandbox.app)   # then call start()/stop() from the lifespan

It serves `/v1/...` (Stripe's API), `/_control/...` (the control API) and the hosted pages
(`/onboarding/{link}`, `/checkout/{session}`, `/express/{token}`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from souq.sandbox.api import Api
from souq.sandbox.control import Control
from souq.sandbox.core import Core
from souq.sandbox.delivery import Deliverer, run_loop
from souq.sandbox.engine import Engine
from souq.sandbox.pages import Pages
from souq.sandbox.store import Store

__all__ = ["Sandbox", "SandboxConfig"]


@dataclass
class SandboxConfig:
    db_path: Path
    public_url: str
    stripe_fee_percent_bps: int = 290
    stripe_fee_fixed: int = 30
    deliver_webhooks_in_background: bool = True
    async_capture: bool = False
    # When set, /v1 accepts only this key (any other gets Stripe's 401) and /_control also
    # answers non-loopback clients presenting it; when None, any sk_test_ key works and
    # /_control is loopback-only.
    api_key: str | None = None


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.db_path)
        self.engine = Engine(
            Core(
                self.store,
                public_url=config.public_url,
                fee_bps=config.stripe_fee_percent_bps,
                fee_fixed=config.stripe_fee_fixed,
                async_capture=config.async_capture,
            )
        )
        self.deliverer = Deliverer(self.engine.core)
        self._api = Api(self.engine, config.api_key)
        self._control = Control(self.engine, self.deliverer, config.api_key)
        self._pages = Pages(self.engine, self.deliverer)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/{path:path}", self._api.handle, methods=["GET", "POST", "DELETE"]),
                Mount("/_control", routes=self._control.routes()),
                *self._pages.routes(),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Runs only when the sandbox is the top-level app (standalone); mounted, the host app
        # calls start()/stop() itself.
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def ensure_webhook_endpoint(
        self, url: str, *, connect: bool, events: Sequence[str] = ("*",)
    ) -> str:
        """Register (once) an endpoint for these event types (every type by default), keeping
        an existing one's list up to date; answers its whsec_ secret."""
        return self.engine.webhook_endpoints.ensure(url, connect=connect, events=events)

    async def start(self) -> None:
        if self.config.deliver_webhooks_in_background and self._task is None:
            self._stop = asyncio.Event()
            loop = run_loop(self.deliverer, self.engine.tick, self._stop)
            self._task = asyncio.create_task(loop)

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            # A delivery in flight may wait on a slow receiver; don't hold shutdown for it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, timeout=2)
            self._task = None
        await self.deliverer.close()

    def reset(self) -> None:
        """Forget all state except registered webhook endpoints (their secrets stay valid)."""
        self.store.reset()
