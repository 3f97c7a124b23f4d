"""`souq sandbox`: the sandbox as its own server, behind an API key of its own."""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn

from souq.sandbox import Sandbox, SandboxConfig
from souq.sandbox.objects import new_id


def api_key_file(db_path: Path) -> Path:
    """Where a generated key is kept: beside the sandbox's database."""
    return db_path.with_name(db_path.stem + ".api_key")


def load_or_create_api_key(path: Path) -> str:
    """The key kept in `path`, or a new random `sk_test_` key written there (owner-only), so
    clients configured once keep working across restarts."""
    if path.exists():
        key = path.read_text().strip()
        if key.startswith("sk_test_") and len(key) > 8:
            return key
    key = new_id("sk_test_", 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def run_sandbox(host: str, port: int, db_path: Path, reset: bool, api_key: str | None) -> None:
    """Serve the sandbox standalone; its lifespan runs webhook delivery in the background.
    Without a key given, it uses (or makes) the one kept beside its database."""
    if api_key is not None and not (api_key.startswith("sk_test_") and len(api_key) > 8):
        raise SystemExit("The sandbox API key must start with sk_test_.")
    key = api_key or load_or_create_api_key(api_key_file(db_path))
    sandbox = Sandbox(
        SandboxConfig(db_path=db_path, public_url=f"http://{host}:{port}", api_key=key)
    )
    if reset:
        sandbox.reset()
    origin = "given" if api_key else f"kept in {api_key_file(db_path)}"
    print(f"Stripe sandbox on http://{host}:{port}, API key {key} ({origin})", flush=True)
    uvicorn.run(sandbox.app, host=host, port=port, log_level="info")
