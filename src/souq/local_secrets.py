"""Secrets generated once and kept in the data folder: the development SECRET_KEY and the
embedded sandbox's API key. Nothing secret is shipped in the code, and every process serving
the same data folder (the server, the CLI) finds the same value."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def kept_secret(folder: Path, name: str, make: Callable[[], str]) -> str:
    """The secret stored in `folder/name`, created with `make()` on first use.

    The file is readable by its owner only (0600). It is written under a temporary name and
    linked into place, so two processes starting at once agree on one value and neither ever
    reads a half-written file."""
    path = folder / name
    existing = _read(path)
    if existing:
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{name}.{secrets.token_hex(8)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(make() + "\n")
        with contextlib.suppress(FileExistsError):  # another process was first: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    value = _read(path)
    if not value:
        raise RuntimeError(f"could not keep a secret in {path}")
    return value


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def random_secret_key() -> str:
    """256 random bits, URL-safe: the session-signing key of a development data folder."""
    return secrets.token_urlsafe(32)


def random_sandbox_key() -> str:
    """A Stripe-shaped test key for the embedded sandbox."""
    return "sk_test_" + secrets.token_hex(24)
