"""The `souq` command."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from souq.config import PROJECT_ROOT, Settings, get_settings
from souq.db import engine_for, session_factory, unit_of_work
from souq.payments.stripe import StripeGateway

app = typer.Typer(help="Souq: a multi-vendor marketplace payments backend.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()

T = TypeVar("T")


def run_in_session(
    work: Callable[[AsyncSession], Awaitable[T]], settings: Settings | None = None
) -> T:
    """Run `work` in one unit of work: committed if it returns, rolled back if it raises."""
    settings = settings or get_settings()
    from souq.auth.service import configure_password_hashing

    configure_password_hashing(settings)

    async def main() -> T:
        engine = engine_for(settings)
        try:
            async with unit_of_work(session_factory(engine)) as session:
                return await work(session)
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
    from souq.serving import ServerOptions
    from souq.serving import serve as run_server

    settings = get_settings()
    if "app_url" not in settings.model_fields_set:
        # No APP_URL given: the public address is the one being served, so Stripe's return
        # URLs (and the embedded sandbox's pages) point back here.
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        os.environ["APP_URL"] = f"http://{shown}:{port}"
        get_settings.cache_clear()
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
    run_server(ServerOptions("souq.app:create_app"), host, port, workers)


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 12111,
    reset: Annotated[bool, typer.Option(help="Clear all sandbox state first.")] = False,
) -> None:
    """Run the Stripe sandbox on its own, as a local stand-in for api.stripe.com."""
    from souq.sandbox.cli import run_sandbox

    run_sandbox(host=host, port=port, db_path=get_settings().sandbox_db_path, reset=reset)


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(prompt=True, help="The admin's email.")],
    name: Annotated[str, typer.Option(prompt=True, help="The admin's name.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create a platform admin (or make an existing user one)."""
    from souq.auth import service as auth
    from souq.auth.models import User

    async def work(session: AsyncSession) -> str:
        user = await auth.get_user_by_email(session, email)
        if user is not None:
            user.is_platform_admin = True
            return f"{user.email} is now a platform admin"
        created: User = await auth.create_user(
            session, email=email, password=password, name=name, is_platform_admin=True
        )
        return f"created platform admin {created.email}"

    console.print(run_in_session(work))


@app.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Only load into a database with no users.")
    ] = False,
) -> None:
    """Load the demo marketplace (idempotent) and print its logins."""
    from souq.demo import DEMO_PASSWORD, load_demo

    async def work(session: AsyncSession) -> list[str] | None:
        return await load_demo(session, only_if_empty=if_empty)

    with console.status("loading demo data"):
        created = run_in_session(work)
    if created is None:
        console.print("demo data: the database already has users; left as it is")
    else:
        console.print(f"demo data: {len(created)} new records")
    from souq.demo import DEMO_LOGINS

    settings = get_settings()
    console.print(
        f"\nOpen [bold]{settings.app_url}[/bold] and log in with password "
        f"[bold]{DEMO_PASSWORD}[/bold] as:"
    )
    for email, what in DEMO_LOGINS:
        console.print(f"  {email:<24} {what}")


def _gateway(settings: Settings) -> StripeGateway:
    from souq.app import sandbox_stripe_settings

    return StripeGateway(sandbox_stripe_settings(settings))


stripe_app = typer.Typer(help="Stripe Connect upkeep.", no_args_is_help=True)
app.add_typer(stripe_app, name="stripe")


@stripe_app.command("sync-accounts")
def sync_accounts() -> None:
    """Re-read every connected store's account from Stripe and update its status."""
    from souq.payments.reconcile import connected_store_ids
    from souq.payments.reconcile import sync_accounts as sync

    settings = get_settings()

    async def main() -> dict[int, list[str]]:
        engine = engine_for(settings)
        factory = session_factory(engine)
        try:
            total = len(await connected_store_ids(factory))
            with Progress(console=console) as bar:
                task = bar.add_task("syncing connected accounts", total=total)
                return await sync(factory, _gateway(settings), lambda n: bar.advance(task, n))
        finally:
            await engine.dispose()

    changed = asyncio.run(main())
    if not changed:
        console.print("every store already matched Stripe")
    for store_id, fields in changed.items():
        console.print(f"store {store_id}: {', '.join(fields)}")
    console.print(f"{len(changed)} store(s) changed")


@app.command()
def reconcile(
    min_age: Annotated[
        int,
        typer.Option(
            help="Orders whose session id was never saved are looked up only once they are "
            "this many seconds old (younger ones may still be checking out).",
        ),
    ] = 120,
) -> None:
    """Recover orders whose webhooks never came: pending orders, and paid ones without a
    payment row, are brought to their Checkout Session's state."""
    from souq.payments.reconcile import orders_to_reconcile, reconcile_orders

    settings = get_settings()

    async def main() -> dict[str, int]:
        engine = engine_for(settings)
        factory = session_factory(engine)
        try:
            total = len(await orders_to_reconcile(factory))
            with Progress(console=console) as bar:
                task = bar.add_task("reconciling orders", total=total)
                summary = await reconcile_orders(
                    factory,
                    _gateway(settings),
                    settings,
                    lambda n: bar.advance(task, n),
                    in_flight=timedelta(seconds=min_age),
                )
            return dict(summary)
        finally:
            await engine.dispose()

    summary = asyncio.run(main())
    table = Table("outcome", "orders")
    for outcome, count in sorted(summary.items()):
        table.add_row(outcome, str(count))
    console.print(table if summary else "no orders needed reconciling")


events_app = typer.Typer(help="The Stripe webhook inbox.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("list")
def events_list(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only events not yet processed.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """List received Stripe events."""
    from sqlalchemy import select

    from souq.payments.models import StripeEvent

    async def work(session: AsyncSession) -> list[StripeEvent]:
        query = select(StripeEvent).order_by(StripeEvent.id.desc()).limit(limit)
        if failed:
            query = query.where(StripeEvent.processed_at.is_(None))
        return list((await session.execute(query)).scalars())

    rows = run_in_session(work)
    table = Table("event", "type", "account", "received", "processed", "attempts", "last error")
    for row in rows:
        table.add_row(
            row.stripe_event_id,
            row.type,
            row.account or "",
            f"{row.received_at:%Y-%m-%d %H:%M:%S}",
            f"{row.processed_at:%H:%M:%S}" if row.processed_at else "no",
            str(row.attempts),
            (row.last_error or "")[:60],
        )
    console.print(table)


@events_app.command("replay")
def events_replay(
    event_id: Annotated[str, typer.Argument(help="The Stripe event id (evt_…).")],
) -> None:
    """Run an event's handler again (handlers are idempotent)."""
    import souq.payments.checkout
    import souq.payments.onboarding  # noqa: F401 - registers the event handlers
    from souq.payments.webhooks import process_event

    settings = get_settings()

    async def main() -> str:
        engine = engine_for(settings)
        try:
            outcome = await process_event(
                session_factory(engine), _gateway(settings), event_id, force=True
            )
            return outcome.status
        finally:
            await engine.dispose()

    from sqlalchemy.exc import NoResultFound

    try:
        status = asyncio.run(main())
    except NoResultFound:
        console.print(f"[red]no event {event_id} in the inbox[/red]")
        raise typer.Exit(1) from None
    except Exception as exc:
        console.print(f"[red]{event_id} failed again: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{event_id}: {status}")


if __name__ == "__main__":
    app()
