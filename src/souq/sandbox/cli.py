"""`souq sandbox`: the sandbox as its own server (the lead wires run_sandbox into the CLI)."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from souq.sandbox import Sandbox, SandboxConfig


def run_sandbox(host: str, port: int, db_path: Path, reset: bool) -> None:
    """Serve the sandbox standalone; its lifespan runs webhook delivery in the background."""
    sandbox = Sandbox(SandboxConfig(db_path=db_path, public_url=f"http://{host}:{port}"))
    if reset:
        sandbox.reset()
    uvicorn.run(sandbox.app, host=host, port=port, log_level="info")
