"""Every money test starts with the sandbox on the wall clock and without faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.payments.stripe_helpers import clear_faults, reset_clock
from tests.servers import LiveServer


@pytest.fixture(autouse=True)
def calm_sandbox(live: LiveServer) -> Iterator[None]:
    yield
    clear_faults(live)
    reset_clock(live)
