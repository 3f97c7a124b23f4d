"""The `souq` command.

Each command imports what it uses inside its own function: `souq --help` and a command that
needs little (a report, `db upgrade`) do not pay for the web app, the job queue and the Stripe
SDK at start-up."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Column, Table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from souq.config import Settings
    from souq.payments.stripe import StripeGateway

app = typer.Typer(help="Souq: a multi-vendor marketplace payments backend.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()

T = TypeVar("T")


def get_settings() -> Settings:
    from souq.config import get_settings as settings_from_environment

    return settings_from_environment()


@dataclass
class Context:
    """What a command works with: the settings, the session factory on an open engine, and
    the Stripe gateway (the embedded sandbox's when no Stripe key is set)."""

    settings: Settings
    factory: async_sessionmaker[AsyncSession]

    @cached_property
    def gateway(self) -> StripeGateway:
        from souq.app import sandbox_stripe_settings
        from souq.payments.stripe import StripeGateway

        return StripeGateway(sandbox_stripe_settings(self.settings))


def run(work: Callable[[Context], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run a command's async work against the database, disposing of the engine afterwards."""
    # Every model, so relationships named by string (Order.transfer) resolve in any command.
    import souq.models  # noqa: F401
    from souq.auth.service import configure_password_hashing
    from souq.db import engine_for, session_factory
    from souq.notifications.service import AFTER_OUTBOX_COMMIT, APP_URL
    from souq.notifications.tasks import start_sending

    settings = settings or get_settings()

    configure_password_hashing(settings)

    async def main() -> T:
        engine = engine_for(settings)
        try:
            # A worker's jobs queue the senders after writing messages; in a one-off
            # command no job queue runs and the hook does nothing.
            factory = session_factory(
                engine, {APP_URL: settings.app_url, AFTER_OUTBOX_COMMIT: start_sending}
            )
            return await work(Context(settings, factory))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def run_in_session(
    work: Callable[[AsyncSession], Awaitable[T]], settings: Settings | None = None
) -> T:
    """Run `work` in one unit of work: committed if it returns, rolled back if it raises."""
    from souq.db import unit_of_work

    async def in_session(ctx: Context) -> T:
        async with unit_of_work(ctx.factory) as session:
            return await work(session)

    return run(in_session, settings)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    import logging

    from souq.migrations import upgrade

    # Show which revisions ran, as the `alembic` command does.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
    alembic_log = logging.getLogger("alembic")
    alembic_log.addHandler(handler)
    alembic_log.setLevel(logging.INFO)
    upgrade(get_settings().database_url)
    console.print("[green]database is up to date[/green]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the marketplace (with the Stripe sandbox embedded when no Stripe key is set)."""
    from souq import config
    from souq.serving import ServerOptions
    from souq.serving import serve as run_server

    settings = get_settings()
    if "app_url" not in settings.model_fields_set:
        # No APP_URL given: the public address is the one being served, so Stripe's return
        # URLs (and the embedded sandbox's pages) point back here.
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        os.environ["APP_URL"] = f"http://{shown}:{port}"
        config.get_settings.cache_clear()
        settings = get_settings()
    try:
        settings.check_startup()
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if settings.uses_sandbox and workers > 1:
        raise typer.BadParameter("the embedded sandbox runs in one process; use --workers 1")
    settings = settings.with_local_secrets()
    console.print(f"Souq on [bold]{settings.app_url}[/bold]")
    if settings.uses_sandbox:
        assert settings.sandbox_api_key is not None
        console.print(
            "Stripe: the embedded sandbox at "
            f"[bold]{settings.app_url}/_sandbox[/bold] (no STRIPE_SECRET_KEY set), "
            f"API key [bold]{settings.sandbox_api_key.get_secret_value()}[/bold]"
        )
    run_server(
        ServerOptions(
            "souq.app:create_app",
            # The app resolves the client address itself from the same setting; telling
            # uvicorn too makes its own log lines show the real client.
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
        ),
        host,
        port,
        workers,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Jobs at once (default: JOBS_CONCURRENCY).")
    ] = None,
) -> None:
    """Run background jobs (PostgreSQL): start as many as you like, on as many hosts."""
    from souq import jobs

    settings = get_settings()
    if not jobs.is_postgres(settings):
        console.print(
            "[red]on SQLite `souq serve` runs the jobs itself; `souq worker` needs PostgreSQL[/red]"
        )
        raise typer.Exit(1)
    if concurrency is not None:
        settings = settings.model_copy(update={"jobs_concurrency": concurrency})

    async def main(ctx: Context) -> None:
        from souq.jobs_postgres import ProcrastinateQueue

        context = jobs.JobContext(ctx.settings, ctx.factory, ctx.gateway)
        async with jobs.running(context, worker=False) as queue:
            assert isinstance(queue, ProcrastinateQueue)
            console.print(f"souq worker: {ctx.settings.jobs_concurrency} job(s) at once")
            await queue.run_worker(install_signal_handlers=True)

    run(main, settings)


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 12111,
    reset: Annotated[bool, typer.Option(help="Clear all sandbox state first.")] = False,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="SANDBOX_API_KEY",
            help="The sk_test_ key clients must use; by default a random one kept beside the "
            "sandbox's database.",
        ),
    ] = None,
) -> None:
    """Run the Stripe sandbox on its own, as a local stand-in for api.stripe.com."""
    from souq.sandbox.cli import run_sandbox

    run_sandbox(
        host=host,
        port=port,
        db_path=get_settings().sandbox_db_path,
        reset=reset,
        api_key=api_key,
    )


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


stripe_app = typer.Typer(help="Stripe Connect upkeep.", no_args_is_help=True)
app.add_typer(stripe_app, name="stripe")


@stripe_app.command("sync-accounts")
def sync_accounts() -> None:
    """Re-read every connected store's account from Stripe and update its status."""
    from rich.progress import Progress

    from souq.payments.reconcile import connected_store_ids
    from souq.payments.reconcile import sync_accounts as sync

    async def main(ctx: Context) -> dict[int, list[str]]:
        total = len(await connected_store_ids(ctx.factory))
        with Progress(console=console) as bar:
            task = bar.add_task("syncing connected accounts", total=total)
            return await sync(ctx.factory, ctx.gateway, lambda n: bar.advance(task, n))

    changed = run(main)
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
    payment row, are brought to their Checkout Session's state; then unsent store transfers,
    due dispute recoveries and refused split-cart refund reversals are tried once more."""
    from rich.progress import Progress

    from souq.payments.reconcile import orders_to_reconcile, reconcile_orders

    async def main(ctx: Context) -> dict[str, int]:
        total = len(await orders_to_reconcile(ctx.factory))
        with Progress(console=console) as bar:
            task = bar.add_task("reconciling orders", total=total)
            summary = await reconcile_orders(
                ctx.factory,
                ctx.gateway,
                ctx.settings,
                lambda n: bar.advance(task, n),
                in_flight=timedelta(seconds=min_age),
            )
        return dict(summary)

    summary = run(main)
    table = Table("outcome", "orders")
    for outcome, count in sorted(summary.items()):
        table.add_row(outcome, str(count))
    console.print(table if summary else "no orders needed reconciling")
    _send_notifications()


@app.command("release-transfers")
def release_transfers() -> None:
    """Send the store transfers held until fulfilment whose holding time is over
    (TRANSFER_RELEASE_DAYS after the payment), unless the order is refunded or disputed; the
    background job `payments.release_held_transfers` does the same every hour."""
    from souq.payments.transfers import release_due_transfers

    summary = run(
        lambda ctx: release_due_transfers(
            ctx.factory, ctx.gateway, ctx.settings.transfer_release_days
        )
    )
    for outcome, count in sorted(summary.items()):
        console.print(f"transfer {outcome}: {count}")
    console.print(f"{sum(summary.values())} held transfer(s) due")


disputes_app = typer.Typer(help="Chargebacks.", no_args_is_help=True)
app.add_typer(disputes_app, name="disputes")


@disputes_app.command("recover")
def disputes_recover() -> None:
    """Make every dispute recovery that is due and not made (a lost dispute's reversal of the
    store's transfer, or a won one's give-back): the same Stripe idempotency key unless Stripe
    refused the last try. The job `ledger.recover_disputes` does the same every hour."""
    from souq.ledger.disputes import make_due_recoveries

    summary = run(lambda ctx: make_due_recoveries(ctx.factory, ctx.gateway))
    for outcome, count in sorted(summary.items()):
        console.print(f"dispute recovery {outcome}: {count}")
    console.print(f"{sum(summary.values())} dispute recovery(ies) due")


def _send_notifications() -> None:
    from souq.senders import send_all

    mail, hooks = run(lambda ctx: send_all(ctx.factory, ctx.settings))
    console.print(
        f"mail: {mail.sent} sent, {mail.kept} kept in the outbox, {mail.retrying} to retry, "
        f"{mail.failed} failed"
    )
    console.print(
        f"webhooks: {hooks.delivered} delivered, {hooks.retrying} to retry, {hooks.failed} "
        f"failed, {len(hooks.disabled_endpoints)} endpoint(s) disabled"
    )


notifications_app = typer.Typer(help="Email and outgoing webhooks.", no_args_is_help=True)
app.add_typer(notifications_app, name="notifications")


@notifications_app.command("send")
def notifications_send() -> None:
    """Send the mail and webhook deliveries that are due (retries included). Until the job
    queue runs this, run it every minute or so (cron); the server also runs it after every
    change that writes messages."""
    _send_notifications()


report_app = typer.Typer(
    help="Reports from the ledger (amounts in minor units).", no_args_is_help=True
)
app.add_typer(report_app, name="report")
DAY_HELP = "A day (UTC), YYYY-MM-DD, included."
FromOption = Annotated[datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help=DAY_HELP)]
ToOption = Annotated[datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help=DAY_HELP)]


def _print_rows(rows: Sequence[Any], kind: type, as_csv: bool) -> None:
    from dataclasses import fields

    from souq.ledger.reports import to_csv

    if as_csv:
        typer.echo(to_csv(rows, kind), nl=False)
        return
    names = [f.name for f in fields(kind)]
    table = Table(*[n.replace("_", " ") for n in names])
    for row in rows:
        table.add_row(*[str(getattr(row, n)) for n in names])
    console.print(table)


@report_app.command("fees")
def report_fees(
    start: FromOption = None,
    end: ToOption = None,
    currency: Annotated[str | None, typer.Option(help="Only this currency.")] = None,
    store: Annotated[int | None, typer.Option(help="Only this store id.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
) -> None:
    """The platform's fee report: per day, currency and store."""
    from souq.ledger.reports import FeeRow, fee_rows

    async def work(session: AsyncSession) -> list[FeeRow]:
        return await fee_rows(
            session,
            start=start.date() if start else None,
            end=end.date() if end else None,
            currency=currency,
            store_id=store,
        )

    _print_rows(run_in_session(work), FeeRow, as_csv)


@report_app.command("statement")
def report_statement(
    store: Annotated[int, typer.Argument(help="The store id.")],
    start: FromOption = None,
    end: ToOption = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
) -> None:
    """A store's statement: per day and currency, then its payouts (with --csv, the payouts
    follow the rows after an empty line)."""
    from souq.ledger.reports import PayoutLine, StatementRow, statement_payouts, statement_rows

    async def work(session: AsyncSession) -> tuple[list[StatementRow], list[PayoutLine]]:
        period = {"start": start.date() if start else None, "end": end.date() if end else None}
        return (
            await statement_rows(session, store, **period),
            await statement_payouts(session, store, **period),
        )

    rows, paid_out = run_in_session(work)
    _print_rows(rows, StatementRow, as_csv)
    if as_csv:
        console.print()
    _print_rows(paid_out, PayoutLine, as_csv)


events_app = typer.Typer(help="The Stripe webhook inbox.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("list")
def events_list(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only events not yet processed.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array, every field in full.")
    ] = False,
) -> None:
    """List received Stripe events (full ids, whatever the terminal's width)."""
    from souq.payments.webhooks import list_events

    rows = run_in_session(lambda session: list_events(session, failed=failed, limit=limit))
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": row.stripe_event_id,
                        "type": row.type,
                        "account": row.account,
                        "created": row.created,
                        "receivedAt": row.received_at.isoformat(),
                        "processedAt": row.processed_at.isoformat() if row.processed_at else None,
                        "attempts": row.attempts,
                        "lastError": row.last_error,
                        "ignoredReason": row.ignored_reason,
                    }
                    for row in rows
                ],
                indent=2,
            )
        )
        return
    table = Table("type", "account", "received", "processed", "tries", "note", expand=True)
    # The id is what an operator copies into `souq events replay`: it is never cut or folded,
    # the other columns give way instead.
    table.columns.insert(0, Column("event", no_wrap=True, overflow="ignore", min_width=30))
    for row in rows:
        table.add_row(
            row.stripe_event_id,
            row.type,
            row.account or "",
            f"{row.received_at:%Y-%m-%d %H:%M:%S}",
            f"{row.processed_at:%H:%M:%S}" if row.processed_at else "no",
            str(row.attempts),
            (row.last_error or (f"ignored: {row.ignored_reason}" if row.ignored_reason else ""))[
                :120
            ],
        )
    console.print(table)


@events_app.command("replay")
def events_replay(
    event_id: Annotated[str, typer.Argument(help="The Stripe event id (evt_…).")],
) -> None:
    """Run an event's handler again (handlers are idempotent)."""
    from sqlalchemy.exc import NoResultFound

    from souq.payments.tasks import replay_event

    async def main(ctx: Context) -> str:
        outcome = await replay_event(ctx.factory, ctx.gateway, event_id)
        return outcome.status + (f" ({outcome.reason})" if outcome.reason else "")

    try:
        status = run(main)
    except NoResultFound:
        console.print(f"[red]no event {event_id} in the inbox[/red]")
        raise typer.Exit(1) from None
    except Exception as exc:
        console.print(f"[red]{event_id} failed again: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{event_id}: {status}")


@events_app.command("sweep")
def events_sweep(
    settle: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Only events at least this many seconds old (default: "
            "EVENTS_SWEEP_SETTLE_SECONDS; younger ones may still be on their way).",
        ),
    ] = None,
) -> None:
    """Find events Stripe made that never reached the inbox (every account), record them and
    process them now: what the periodic sweep job does."""
    from souq.payments.handlers import HANDLERS
    from souq.payments.sweep import sweep
    from souq.payments.webhooks import process_event

    settings = get_settings()
    if settle is not None:
        settings = settings.model_copy(update={"events_sweep_settle_seconds": settle})

    async def main(ctx: Context) -> list[str]:
        lines = []
        for event_id in await sweep(ctx.factory, ctx.gateway, ctx.settings):
            try:
                outcome = await process_event(ctx.factory, ctx.gateway, HANDLERS, event_id)
                lines.append(f"{event_id}: {outcome.status}")
            except Exception as exc:
                lines.append(f"{event_id}: failed ({type(exc).__name__}), left for the jobs")
        return lines

    found = run(main, settings)
    for line in found:
        console.print(line)
    console.print(f"{len(found)} missed event(s) recorded")


if __name__ == "__main__":
    app()
