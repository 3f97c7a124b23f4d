"""The browser tests: Playwright driving Debian's Chromium (headless) against the live server.

One browser per test process (xdist worker), started on first use; every test gets a fresh
context (its own cookies) and page. `Browsing.check(page, name)` is each journey's checkpoint:
axe-core, run in the page, must find no serious or critical violation, and a screenshot goes to
test-artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import warnings
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    async_playwright,
)

from tests.helpers import fake_address
from tests.servers import LiveServer

CHROMIUM = Path(os.environ.get("SOUQ_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
PHONE = ViewportSize(width=375, height=740)
DESKTOP = ViewportSize(width=1200, height=900)
BLOCKING = {"serious", "critical"}
CLOSE_SECONDS = 30


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def playwright_driver() -> AsyncIterator[Playwright]:
    if not _is_file(CHROMIUM):
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: `apt-get install -y chromium` "
            "(`make test` does it when run as root), or set SOUQ_TEST_CHROMIUM",
            pytrace=False,
        )
    driver = await async_playwright().start()
    try:
        yield driver
    finally:
        await _within(driver.stop(), "stop Playwright's driver")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(playwright_driver: Playwright) -> AsyncIterator[Browser]:
    launched = await playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
    )
    try:
        yield launched
    finally:
        await _within(launched.close(), "close Chromium")


async def _within(closing: Awaitable[None], what: str) -> None:
    """A session's end never waits forever on a browser that went away (a whole run once hung
    here after its last test): give up after CLOSE_SECONDS and say so."""
    try:
        await asyncio.wait_for(closing, CLOSE_SECONDS)
    except TimeoutError:
        warnings.warn(f"could not {what} within {CLOSE_SECONDS} s", stacklevel=1)


def _is_file(path: Path) -> bool:
    return path.is_file()


def _artifact(name: str) -> str:
    """Where a screenshot goes: test-artifacts/<name>.png (the folder is made on first use)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class Browsing:
    """A test's browser: a context of its own, pointed at the live server."""

    live: LiveServer
    context: BrowserContext
    test_name: str
    checked: list[str] = field(default_factory=list)

    async def page(self) -> Page:
        page = await self.context.new_page()
        page.set_default_timeout(15_000)
        return page

    def url(self, path: str) -> str:
        return self.live.url + path

    async def another_browser(self) -> BrowserContext:
        """A second person's browser (or the same person's second one); close it after."""
        assert self.context.browser is not None
        return await new_context(self.context.browser, self.live)

    async def check(self, page: Page, name: str) -> None:
        """Accessibility (axe-core: nothing serious or critical), then the same at a phone's
        width (375 px: nothing wider than the screen), with a screenshot of each."""
        await assert_accessible(page)
        base = f"{_slug(self.test_name)}--{_slug(name)}"
        await page.screenshot(path=_artifact(base), full_page=True)
        size = page.viewport_size
        await page.set_viewport_size(PHONE)
        try:
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name}: the page is {overflow}px wider than a 375px screen"
            await assert_accessible(page)
            await page.screenshot(path=_artifact(f"{base}-phone"), full_page=True)
        finally:
            if size is not None:
                await page.set_viewport_size(size)
        self.checked.append(name)


async def assert_accessible(page: Page) -> None:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=AXE)
    result: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    blocking = [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["html"] for node in violation["nodes"][:3]],
        }
        for violation in result["violations"]
        if violation["impact"] in BLOCKING
    ]
    assert not blocking, f"{page.url}: " + json.dumps(blocking, indent=1)


async def new_context(browser: Browser, live: LiveServer) -> BrowserContext:
    """A browser context (its own cookies) pointed at `live`."""
    return await browser.new_context(
        viewport=DESKTOP,
        base_url=live.url,
        # Each context is a client of its own address: the per-address throttles never meet.
        extra_http_headers={"X-Forwarded-For": fake_address()},
        locale="en-US",
        # The app forbids every script (CSP): only axe-core, injected by the test, needs one.
        bypass_csp=True,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def browsing(
    request: pytest.FixtureRequest, live: LiveServer, browser: Browser
) -> AsyncIterator[Browsing]:
    context = await new_context(browser, live)
    try:
        yield Browsing(live=live, context=context, test_name=request.node.name)
    finally:
        await context.close()
