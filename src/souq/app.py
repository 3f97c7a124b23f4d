"""create_app(): the routers, the middleware, and the embedded Stripe sandbox when no Stripe
key is set."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import SecretStr
from starlette.middleware.sessions import SessionMiddleware

from souq.auth.service import configure_password_hashing
from souq.config import Settings, get_settings
from souq.db import engine_for, session_factory
from souq.errors import install_error_handlers
from souq.payments.handlers import SUBSCRIBED_EVENTS
from souq.payments.stripe import StripeGateway

log = logging.getLogger(__name__)

SANDBOX_MOUNT = "/_sandbox"
SANDBOX_API_KEY = "sk_test_souq_sandbox"
SESSION_COOKIE = "souq_session"
SESSION_MAX_AGE = 14 * 24 * 3600


def sandbox_stripe_settings(settings: Settings) -> Settings:
    """With no Stripe key, the SDK talks to the embedded sandbox over HTTP, exactly as it talks
    to Stripe (the CLI uses this too, against the running server)."""
    if not settings.uses_sandbox:
        return settings
    return settings.model_copy(
        update={
            "stripe_secret_key": SecretStr(SANDBOX_API_KEY),
            "stripe_api_base": settings.app_url + SANDBOX_MOUNT,
        }
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_production()
    configure_password_hashing(settings)
    sandbox = None
    if settings.uses_sandbox:
        from souq.sandbox import Sandbox, SandboxConfig

        sandbox = Sandbox(
            SandboxConfig(
                db_path=settings.sandbox_db_path,
                public_url=settings.app_url + SANDBOX_MOUNT,
            )
        )
        settings = sandbox_stripe_settings(settings).model_copy(
            update={
                "stripe_webhook_secret": SecretStr(
                    sandbox.ensure_webhook_endpoint(
                        settings.app_url + "/api/stripe/webhook",
                        connect=False,
                        events=SUBSCRIBED_EVENTS,
                    )
                ),
                "stripe_connect_webhook_secret": SecretStr(
                    sandbox.ensure_webhook_endpoint(
                        settings.app_url + "/api/stripe/connect/webhook",
                        connect=True,
                        events=SUBSCRIBED_EVENTS,
                    )
                ),
            }
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_for(settings)
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
    app.state.stripe = StripeGateway(settings)
    install_error_handlers(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.app_url.startswith("https://"),
    )
    _include_routers(app)
    if sandbox is not None:
        app.mount(SANDBOX_MOUNT, sandbox.app)
    return app


def _include_routers(app: FastAPI) -> None:
    from souq.auth.api import router as auth_api
    from souq.auth.pages import router as auth_pages
    from souq.listings.api import router as listings_api
    from souq.orders.api import router as orders_api
    from souq.orders.pages import router as orders_pages
    from souq.payments.api import router as payments_api
    from souq.payments.pages import router as payments_pages
    from souq.stores.api import router as stores_api
    from souq.web.pages import router as web_router

    app.include_router(auth_api)
    app.include_router(auth_pages)
    app.include_router(stores_api)
    app.include_router(listings_api)
    app.include_router(payments_api)
    app.include_router(orders_api)
    app.include_router(payments_pages)
    app.include_router(orders_pages)
    app.include_router(web_router)
