"""create_app(): the routers, the middleware, and the embedded Stripe sandbox when no Stripe
key is set."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import SecretStr
from starlette.middleware.sessions import SessionMiddleware

from souq import jobs
from souq.auth.service import SESSION_LIFETIME, configure_password_hashing
from souq.config import Settings, get_settings
from souq.db import engine_for, session_factory
from souq.errors import install_error_handlers
from souq.middleware import (
    BodySizeLimitMiddleware,
    ProxyHeadersMiddleware,
    SecurityHeadersMiddleware,
    TrustedProxies,
)
from souq.notifications.service import AFTER_OUTBOX_COMMIT, APP_URL
from souq.notifications.tasks import start_sending
from souq.payments.handlers import SUBSCRIBED_EVENTS
from souq.payments.stripe import StripeGateway
from souq.schemas import error_responses

if TYPE_CHECKING:
    from souq.sandbox import Sandbox

log = logging.getLogger(__name__)

SANDBOX_MOUNT = "/_sandbox"
SESSION_COOKIE = "souq_session"


def sandbox_stripe_settings(settings: Settings) -> Settings:
    """With no Stripe key, the SDK talks to the embedded sandbox over HTTP, exactly as it talks
    to Stripe, with the sandbox's own key (the CLI uses this too, against the running server,
    and finds the same key in SANDBOX_API_KEY or the data folder)."""
    if not settings.uses_sandbox:
        return settings
    settings = settings.with_local_secrets()
    assert settings.sandbox_api_key is not None
    return settings.model_copy(
        update={
            "stripe_secret_key": settings.sandbox_api_key,
            "stripe_api_base": settings.app_url + SANDBOX_MOUNT,
        }
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_startup()
    settings = settings.with_local_secrets()
    configure_password_hashing(settings)
    sandbox, settings = _embedded_sandbox(settings)
    docs = settings.docs_enabled
    app = FastAPI(
        title="Souq",
        summary="A multi-vendor marketplace payments backend with Stripe Connect",
        version="0.1.0",
        lifespan=_lifespan(settings, sandbox),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.sandbox = sandbox
    app.state.stripe = StripeGateway(settings)
    install_error_handlers(app)
    _add_middleware(app, settings)
    _include_routers(app)
    if sandbox is not None:
        app.mount(SANDBOX_MOUNT, sandbox.app)
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


def _embedded_sandbox(settings: Settings) -> tuple[Sandbox | None, Settings]:
    """With no Stripe key: the sandbox to mount, and the settings pointing the SDK at it, with
    the signing secrets of the two webhook endpoints it delivers to (made on first start)."""
    if not settings.uses_sandbox:
        return None, settings
    from souq.sandbox import Sandbox, SandboxConfig

    assert settings.sandbox_api_key is not None
    sandbox = Sandbox(
        SandboxConfig(
            db_path=settings.sandbox_db_path,
            public_url=settings.app_url + SANDBOX_MOUNT,
            api_key=settings.sandbox_api_key.get_secret_value(),
        )
    )

    def secret(path: str, *, connect: bool) -> SecretStr:
        url = settings.app_url + path
        return SecretStr(
            sandbox.ensure_webhook_endpoint(url, connect=connect, events=SUBSCRIBED_EVENTS)
        )

    return sandbox, sandbox_stripe_settings(settings).model_copy(
        update={
            "stripe_webhook_secret": secret("/api/stripe/webhook", connect=False),
            "stripe_connect_webhook_secret": secret("/api/stripe/connect/webhook", connect=True),
        }
    )


def _lifespan(
    settings: Settings, sandbox: Sandbox | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_for(settings)
        app.state.engine = engine
        app.state.sessionmaker = session_factory(
            engine, {APP_URL: settings.app_url, AFTER_OUTBOX_COMMIT: start_sending}
        )
        if sandbox is not None:
            await sandbox.start()
        try:
            # The job queue: deferring always works; jobs run here on SQLite, or on
            # PostgreSQL with JOBS_IN_WEB (otherwise `souq worker` runs them). Jobs have a
            # Stripe gateway of their own, so app.state.stripe counts the requests' calls.
            context = jobs.JobContext(settings, app.state.sessionmaker, StripeGateway(settings))
            async with jobs.running(context, worker=jobs.runs_in_process(settings)):
                yield
        finally:
            if sandbox is not None:
                await sandbox.stop()
            await engine.dispose()

    return lifespan


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    https = settings.app_url.startswith("https://")
    # Added innermost first: a request passes the proxy headers, then the security headers
    # (so even a 413 carries them), then the body limit, then the session cookie.
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        same_site="lax",
        https_only=https,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.request_max_body_bytes)
    app.add_middleware(
        SecurityHeadersMiddleware, https=https, stripe_api_base=_external_stripe(settings)
    )
    app.add_middleware(ProxyHeadersMiddleware, trusted=TrustedProxies(settings.forwarded_allow_ips))


def _external_stripe(settings: Settings) -> str | None:
    # The embedded sandbox's pages are on our own origin; only a separate server needs naming.
    return None if settings.uses_sandbox else settings.stripe_api_base


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's description, completed with what every route shares: errors in the one error
    shape (FastAPI's own 422 schema is not what we send), 422 wherever a parameter or body is
    validated, 413 wherever a body is read, and the limits that come from the settings."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    # Every router documents some error with error_responses(), so ErrorBody is a component.
    error_schema = {"$ref": "#/components/schemas/ErrorBody"}
    components = schema["components"]["schemas"]
    for model in ("HTTPValidationError", "ValidationError"):
        components.pop(model, None)
    shared = error_responses(413, 422)
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            validated = bool(operation.get("parameters")) or "requestBody" in operation
            wanted = [422] if validated else []
            if method in ("post", "put", "patch"):
                wanted.append(413)
            for status in wanted:
                responses.setdefault(str(status), {"description": shared[status]["description"]})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = {"application/json": {"schema": error_schema}}
    quantity = components.get("CheckoutItemIn", {}).get("properties", {}).get("quantity")
    if quantity is not None:
        quantity.update({"minimum": 1, "maximum": settings.checkout_max_quantity})
    app.openapi_schema = schema
    return schema


def _include_routers(app: FastAPI) -> None:
    from souq.auth.api import router as auth_api
    from souq.auth.pages import router as auth_pages
    from souq.backoffice.pages import router as backoffice_pages
    from souq.carts.api import router as carts_api
    from souq.carts.pages import router as carts_pages
    from souq.integrations.api import router as integrations_api
    from souq.integrations.pages import router as integrations_pages
    from souq.ledger.api import router as ledger_api
    from souq.ledger.pages import router as ledger_pages
    from souq.listings.api import router as listings_api
    from souq.listings.pages import router as listings_pages
    from souq.notifications.api import router as notifications_api
    from souq.notifications.pages import router as notifications_pages
    from souq.orders.api import router as orders_api
    from souq.orders.pages import router as orders_pages
    from souq.payments.api import router as payments_api
    from souq.payments.pages import router as payments_pages
    from souq.stores.api import router as stores_api
    from souq.stores.pages import router as stores_pages
    from souq.web.pages import router as web_router

    # FastAPI tries routes one by one in this order (2–3 µs each): the public catalogue, the
    # most requested, comes first (no route before it matches any of its paths).
    app.include_router(listings_api)
    app.include_router(orders_pages)
    app.include_router(auth_api)
    app.include_router(auth_pages)
    app.include_router(stores_api)
    app.include_router(payments_api)
    app.include_router(orders_api)
    app.include_router(notifications_api)
    app.include_router(integrations_api)
    app.include_router(notifications_pages)
    app.include_router(carts_api)
    app.include_router(ledger_api)
    app.include_router(payments_pages)
    app.include_router(carts_pages)
    app.include_router(ledger_pages)
    app.include_router(stores_pages)
    app.include_router(listings_pages)
    app.include_router(backoffice_pages)
    app.include_router(integrations_pages)
    app.include_router(web_router)
