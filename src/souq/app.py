"""create_app(): the routers, the middleware, and the embedded Stripe sandbox when no Stripe
key is set."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import SecretStr

from souq.config import Settings, get_settings
from souq.db import create_engine, session_factory
from souq.errors import install_error_handlers

log = logging.getLogger(__name__)

SANDBOX_MOUNT = "/_sandbox"
SANDBOX_API_KEY = "sk_test_souq_sandbox"  # noqa: S105 - the local sandbox accepts any sk_test_ key


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_production()
    sandbox = None
    if settings.uses_sandbox:
        from souq.sandbox import Sandbox, SandboxConfig

        sandbox = Sandbox(
            SandboxConfig(
                db_path=settings.sandbox_db_path,
                public_url=settings.app_url + SANDBOX_MOUNT,
            )
        )
        # The SDK talks to the embedded sandbox over HTTP, exactly as it talks to Stripe.
        settings = settings.model_copy(
            update={
                "stripe_secret_key": SecretStr(SANDBOX_API_KEY),
                "stripe_api_base": settings.app_url + SANDBOX_MOUNT,
                "stripe_webhook_secret": SecretStr(
                    sandbox.ensure_webhook_endpoint(
                        settings.app_url + "/api/stripe/webhook", connect=False
                    )
                ),
                "stripe_connect_webhook_secret": SecretStr(
                    sandbox.ensure_webhook_endpoint(
                        settings.app_url + "/api/stripe/connect/webhook", connect=True
                    )
                ),
            }
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, settings.database_pooled)
        app.state.engine = engine
        app.state.sessionmaker = session_factory(engine)
        if sandbox is not None:
            await sandbox.start()
        try:
            yield
        finally:
            if sandbox is not None:
                await sandbox.stop()
            await engine.dispose()

    app = FastAPI(
        title="Souq",
        summary="A multi-vendor marketplace payments backend with Stripe Connect",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sandbox = sandbox
    install_error_handlers(app)
    _include_routers(app)
    if sandbox is not None:
        app.mount(SANDBOX_MOUNT, sandbox.app)
    return app


def _include_routers(app: FastAPI) -> None:
    from souq.web.pages import router as web_router

    app.include_router(web_router)
