"""One Settings object, read from the environment and `.env`."""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from souq.local_secrets import kept_secret, random_sandbox_key, random_secret_key

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev-secret-change-me"}
SECRET_KEY_MIN_LENGTH = 32
# A random key of 32+ characters has far more; these only catch keys a person typed.
SECRET_KEY_MIN_DISTINCT = 10
SECRET_KEY_MIN_BITS = 100
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
# The files in the data folder that hold secrets generated on first use.
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
SANDBOX_KEY_FILE = "sandbox_api_key"


TransferTiming = Literal["on_payment", "on_fulfilment"]
SplitMode = Literal["single_payment", "per_store"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # Where the default SQLite databases live: ./data under the working directory, never inside
    # the installed package.
    data_dir: Path = Field(
        default=Path("data"), validation_alias=AliasChoices("SOUQ_DATA_DIR", "data_dir")
    )
    database_url: str = Field(
        default_factory=lambda data: f"sqlite:///{data['data_dir'] / 'souq.sqlite3'}"
    )
    # Force server-side prepared statements off (PgBouncer in transaction mode); None = detect
    # from the URL (a "-pooler." host, as Neon names its pooled endpoints).
    database_pooled: bool | None = None
    # PostgreSQL connections per server process. A uvicorn worker serves many requests at once,
    # each holding a connection while its transaction is open; requests beyond the pool wait
    # for a connection (up to the timeout) instead of opening one. Overflow connections are
    # opened for a burst and closed when returned, which under steady load means a new
    # connection per request: keep it 0 and size the pool instead. Every process has its own
    # pool: processes x workers x pool size must stay under the server's max_connections.
    database_pool_size: int = Field(default=20, ge=1)
    database_max_overflow: int = Field(default=0, ge=0)
    database_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    # Extra secrets still accepted while a platform endpoint's secret is being rolled.
    stripe_webhook_secrets_previous: list[SecretStr] = Field(default_factory=list)
    stripe_connect_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_timeout_seconds: float = 20.0
    app_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias=AliasChoices("APP_URL", "NEXT_PUBLIC_APP_URL", "app_url"),
    )
    platform_fee_bps: int = Field(default=500, ge=0, le=10_000)
    # A service fee charged to the buyer on top of the subtotal, in basis points (0: none).
    buyer_fee_bps: int = Field(default=0, ge=0, le=10_000)
    # How a cart with several stores is paid: once, on the platform's account, and split by
    # transfers (single_payment); or one destination-charge payment per store, in turn
    # (per_store), each success page leading to the next store's.
    checkout_split_mode: SplitMode = "single_payment"
    # When a checkout group's store gets its transfer: as soon as the payment succeeds, or
    # once the seller marks the order fulfilled (held until then, or until
    # TRANSFER_RELEASE_DAYS after the payment). A platform admin may set a store's own.
    transfer_timing: TransferTiming = "on_payment"
    # At most 90: see README ("Holding sellers' money") for Stripe's holding periods.
    transfer_release_days: int = Field(default=14, ge=0, le=90)
    # The loss policy (ledger/policy.py), overridable per store by a platform admin: whether
    # a refund returns the commission pro rata, who bears Stripe's processing fee of a
    # refunded sale, who bears a lost dispute's amount and Stripe's dispute fee, and whether
    # the store's share is recovered when the dispute is lost or as soon as funds are withdrawn.
    refund_commission: Literal["returned", "kept"] = "returned"
    processing_fee_bearer: Literal["platform", "store"] = "platform"
    dispute_amount_bearer: Literal["store", "platform"] = "store"
    dispute_fee_bearer: Literal["platform", "store"] = "platform"
    dispute_recovery_on: Literal["lost", "funds_withdrawn"] = "lost"
    # Empty: outside production, a random key generated once and kept in the data folder.
    secret_key: SecretStr = SecretStr("")
    # The embedded sandbox's API key; unset: a random sk_test_ key kept in the data folder.
    sandbox_api_key: SecretStr | None = None
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: comma-separated
    # addresses or networks, or "*"; empty trusts no one (the peer is the client).
    forwarded_allow_ips: str = ""
    # Bodies larger than this are refused with 413 before they are read in full.
    request_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # How long another process's change to the catalogue may go unseen by this one's cache of
    # GET /api/listings and the anonymous /shop (souq/listings/cache.py); 0 turns it off.
    catalogue_cache_seconds: float = Field(default=1.0, ge=0)
    catalogue_cache_max_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # /docs, /redoc and /openapi.json; unset: on, except in production.
    api_docs: bool | None = None
    sandbox_db_path: Path = Field(default_factory=lambda data: data["data_dir"] / "sandbox.sqlite3")
    # Roles that may manage a store's connected account (create it, onboard, open its dashboard).
    connect_manager_roles: list[str] = Field(default_factory=lambda: ["owner", "admin"])
    checkout_max_quantity: int = Field(default=99, ge=1)
    # How long a buyer has to pay: Stripe allows 30 minutes to 24 hours (2 minutes of slack are
    # added for clock skew, see payments/checkout.py).
    checkout_session_ttl_minutes: int = Field(default=30, ge=30, le=24 * 60 - 5)
    # The checkout success page asks Stripe about a pending order at most this often.
    checkout_status_poll_seconds: float = Field(default=5.0, ge=0)
    # How long an Idempotency-Key on a checkout is remembered (Stripe keeps its own 24 hours).
    checkout_idempotency_hours: int = Field(default=24, ge=1)
    # Failed logins for one account from one address before each further try must wait
    # (LOGIN_BACKOFF_SECONDS, doubling with each failure up to LOGIN_BACKOFF_MAX_SECONDS).
    login_max_failures: int = Field(default=5, ge=1)
    login_backoff_seconds: int = Field(default=30, ge=1)
    login_backoff_max_seconds: int = Field(default=900, ge=1)
    # Failed logins from one address, across all accounts, within LOGIN_WINDOW_SECONDS.
    login_address_max_failures: int = Field(default=30, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # Checkouts created per client address and per buyer email within the window, and how many
    # units of one listing one buyer may hold in unpaid orders at once.
    checkout_rate_window_seconds: int = Field(default=600, ge=1)
    checkout_rate_per_address: int = Field(default=30, ge=1)
    checkout_rate_per_email: int = Field(default=10, ge=1)
    checkout_max_held_per_listing: int = Field(default=99, ge=1)
    store_invitation_ttl_days: int = Field(default=7, ge=1, le=90)
    webhook_tolerance_seconds: int = 300
    # Email: smtp://user:password@host:587 (STARTTLS when the server offers it) or
    # smtps://…:465 (TLS from the start). Unset: messages are kept in the database outbox,
    # which a platform admin reads at /admin/outbox.
    smtp_url: SecretStr | None = None
    mail_from: str = "Souq <no-reply@souq.localhost>"
    smtp_timeout_seconds: float = Field(default=20.0, gt=0)
    mail_max_attempts: int = Field(default=6, ge=1)
    # Outgoing webhooks: attempts per delivery, the wait before the first retry (doubling each
    # time, at most 6 hours), failed attempts in a row after which an endpoint is disabled.
    webhook_max_attempts: int = Field(default=8, ge=1)
    outbox_retry_base_seconds: float = Field(default=30.0, ge=0)
    webhook_disable_after_failures: int = Field(default=20, ge=1)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Whether endpoints may be on loopback, link-local or private addresses; unset: only
    # outside production (server-side request forgery).
    webhook_allow_private_addresses: bool | None = None
    # Background jobs (souq/jobs.py). On PostgreSQL `souq worker` runs them; JOBS_IN_WEB makes
    # each `souq serve` process run a worker too (a one-host deployment). On SQLite the web
    # process always runs them itself.
    jobs_in_web: bool = False
    jobs_concurrency: int = Field(default=4, ge=1)
    # Periodic jobs (reconcile, account sync, the missed-event sweep) on or off, and one period
    # for all of them instead of each job's own (tests use a second).
    jobs_periodic: bool = True
    jobs_period_seconds: int | None = Field(default=None, ge=1)
    # A worker writes a heartbeat this often; one silent for jobs_stalled_seconds is taken for
    # dead and its jobs are queued again.
    jobs_heartbeat_seconds: float = Field(default=10.0, gt=0)
    jobs_stalled_seconds: float = Field(default=60.0, gt=0)
    # A failed job waits base**2, base**3, … seconds before its next try (at most 10 minutes);
    # 1 waits a second each time (the test servers). On PostgreSQL a new job wakes a worker at
    # once and one that comes due later (a retry) is found by looking every jobs_poll_seconds.
    jobs_backoff_base: int = Field(default=2, ge=1)
    jobs_poll_seconds: float = Field(default=5.0, gt=0)
    # The missed-event sweep reads Stripe's events older than this (younger ones are still
    # being delivered), and on its first run looks back this far (Stripe keeps 30 days).
    events_sweep_settle_seconds: int = Field(default=60, ge=0)
    events_sweep_lookback_hours: int = Field(default=72, ge=1, le=30 * 24)
    # argon2id cost (argon2-cffi's RFC 9106 low-memory profile); the test suite lowers it.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65_536, ge=8)
    password_hash_parallelism: int = Field(default=4, ge=1)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("app_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        for entry in proxy_entries(value):
            if entry != "*":
                ipaddress.ip_network(entry, strict=False)  # a ValueError names the bad entry
        return value

    @property
    def uses_sandbox(self) -> bool:
        """No Stripe key: Souq runs against its own embedded Stripe sandbox."""
        return self.stripe_secret_key is None

    @property
    def docs_enabled(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.environment != "production"

    @property
    def webhooks_may_reach_private(self) -> bool:
        if self.webhook_allow_private_addresses is not None:
            return self.webhook_allow_private_addresses
        return self.environment != "production"

    @property
    def data_folder(self) -> Path:
        return self.data_dir

    def with_local_secrets(self) -> Settings:
        """These settings with the secrets that were left unset filled in from the data folder
        (generated there on first use): the session key outside production, and the embedded
        sandbox's API key. Production never gets a generated session key: it must be set."""
        update: dict[str, SecretStr] = {}
        if not self.secret_key.get_secret_value() and self.environment != "production":
            update["secret_key"] = SecretStr(
                kept_secret(self.data_folder, SECRET_KEY_FILE, random_secret_key)
            )
        if self.uses_sandbox and self.sandbox_api_key is None:
            update["sandbox_api_key"] = SecretStr(
                kept_secret(self.data_folder, SANDBOX_KEY_FILE, random_sandbox_key)
            )
        return self.model_copy(update=update) if update else self

    def startup_problems(self) -> list[str]:
        """Why these settings are unsafe to start with, by variable name: a live Stripe key
        outside production; in production, weak or missing secrets, a test key, plain http."""
        stripe_key = _secret(self.stripe_secret_key)
        if self.environment != "production":
            if stripe_key.startswith(LIVE_KEY_PREFIXES):
                return [
                    "STRIPE_SECRET_KEY is a live key: it is accepted only with "
                    "ENVIRONMENT=production"
                ]
            return []
        problems: list[str] = []
        if weakness := secret_key_weakness(self.secret_key.get_secret_value()):
            problems.append(f"SECRET_KEY {weakness}")
        if self.stripe_secret_key is None:
            problems.append("STRIPE_SECRET_KEY is missing (the sandbox is not for production)")
        elif stripe_key.startswith(TEST_KEY_PREFIXES):
            problems.append("STRIPE_SECRET_KEY is a test-mode key")
        elif stripe_key.strip().lower() in PLACEHOLDER_SECRETS:
            problems.append("STRIPE_SECRET_KEY is a placeholder")
        for name, value in {
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
            "STRIPE_CONNECT_WEBHOOK_SECRET": self.stripe_connect_webhook_secret,
        }.items():
            if _secret(value).strip().lower() in PLACEHOLDER_SECRETS:
                problems.append(f"{name} is missing or a placeholder")
        if not self.app_url.startswith("https://"):
            problems.append("APP_URL must be an https:// address")
        return problems

    def check_startup(self) -> None:
        if problems := self.startup_problems():
            raise RuntimeError(f"refusing to start ({self.environment}): " + "; ".join(problems))


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def secret_key_weakness(value: str) -> str | None:
    """Why a session-signing key is too weak to guess-proof cookies, or None if it is fine."""
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        return "is missing or a placeholder"
    if value != value.strip():
        return "has leading or trailing whitespace"
    if len(value) < SECRET_KEY_MIN_LENGTH:
        return f"is shorter than {SECRET_KEY_MIN_LENGTH} characters"
    counts = Counter(value)
    # Shannon entropy of the key's own characters: repeated or patterned keys score low.
    bits = -sum(n * math.log2(n / len(value)) for n in counts.values())
    if len(counts) < SECRET_KEY_MIN_DISTINCT or bits < SECRET_KEY_MIN_BITS:
        return "has too little entropy: use a long random value (e.g. 32 random bytes, base64)"
    return None


def proxy_entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
