"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.security.schemathesis_auth): every request of
the authenticated run carries a Bearer token of the test user, fetched afresh when the run
itself revoked the one it had (POST /api/auth/logout does that)."""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis


@schemathesis.auth(refresh_interval=5)
class SouqToken:
    def get(self, case: Any, ctx: Any) -> str:
        response = httpx.post(
            os.environ["SOUQ_ST_URL"] + "/api/auth/tokens",
            json={
                "email": os.environ["SOUQ_ST_EMAIL"],
                "password": os.environ["SOUQ_ST_PASSWORD"],
                "name": "schemathesis",
            },
            # Not the fuzzed requests' address, whose login budget the fuzzing spends.
            headers={"X-Forwarded-For": os.environ["SOUQ_ST_TOKEN_ADDRESS"]},
            timeout=30,
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
