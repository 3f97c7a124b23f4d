"""One Settings object, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev-secret-change-me"}
DEV_SECRET_KEY = "dev-secret-change-me"  # noqa: S105 - a known placeholder, refused in production


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
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
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
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    webhook_tolerance_seconds: int = 300
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

    @property
    def uses_sandbox(self) -> bool:
        """No Stripe key: Souq runs against its own embedded Stripe sandbox."""
        return self.stripe_secret_key is None

    def production_problems(self) -> list[str]:
        """The secrets that are missing or still placeholders, by their variable names."""
        problems: list[str] = []
        if self.secret_key.get_secret_value() in PLACEHOLDER_SECRETS:
            problems.append("SECRET_KEY is missing or a placeholder")
        checks = {
            "STRIPE_SECRET_KEY": self.stripe_secret_key,
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
            "STRIPE_CONNECT_WEBHOOK_SECRET": self.stripe_connect_webhook_secret,
        }
        for name, value in checks.items():
            if value is None or value.get_secret_value().strip() in PLACEHOLDER_SECRETS:
                problems.append(f"{name} is missing or a placeholder")
        return problems

    def check_production(self) -> None:
        if self.environment == "production" and (problems := self.production_problems()):
            raise RuntimeError("refusing to start in production: " + "; ".join(problems))


@lru_cache
def get_settings() -> Settings:
    return Settings()
