"""The `souq` command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from souq.config import PROJECT_ROOT, Settings, get_settings
from souq.db import create_engine, session_factory, session_scope

app = typer.Typer(help="Souq: a multi-vendor marketplace payments backend.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()

T = TypeVar("T")


def run_in_session(work: Callable[[AsyncSession], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run `work` in one unit of work: committed if it returns, rolled back if it raises."""
    settings = settings or get_settings()

    async def main() -> T:
        engine = create_engine(settings.database_url, settings.database_pooled)
        try:
            async for session in session_scope(session_factory(engine)):
                return await work(session)
            raise AssertionError("unreachable")
        finally:
            await engine.dispose()

    return asyncio.run(main())


def upgrade_database(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    upgrade_database(get_settings().database_url)
    console.print("[green]database is up to date[/green]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the marketplace (with the Stripe sandbox embedded when no Stripe key is set)."""
    import uvicorn

    settings = get_settings()
    settings.check_production()
    if settings.uses_sandbox and workers > 1:
        raise typer.BadParameter("the embedded sandbox runs in one process; use --workers 1")
    console.print(f"Souq on [bold]{settings.app_url}[/bold]")
    if settings.uses_sandbox:
        console.print(
            "Stripe: the embedded sandbox at "
            f"[bold]{settings.app_url}/_sandbox[/bold] (no STRIPE_SECRET_KEY set)"
        )
    uvicorn.run(
        "souq.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
    )


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 12111,
    reset: Annotated[bool, typer.Option(help="Clear all sandbox state first.")] = False,
) -> None:
    """Run the Stripe sandbox on its own, as a local stand-in for api.stripe.com."""
    from souq.sandbox.cli import run_sandbox

    run_sandbox(host=host, port=port, db_path=get_settings().sandbox_db_path, reset=reset)
