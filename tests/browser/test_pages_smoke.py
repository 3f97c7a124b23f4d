"""The browser itself works, and the layout every page shares: `lang`, a skip link that the
keyboard reaches first, the header's links for a visitor who is not logged in; and every back
office page, checked with axe-core and at a phone's width."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Browsing
from tests.helpers import PASSWORD, api_user, store_team
from tests.payments.stripe_helpers import platform_admin
from tests.servers import LiveServer

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_layout_works_with_a_keyboard(browsing: Browsing) -> None:
    page = await browsing.page()
    await page.goto("/")
    assert await page.locator("html").get_attribute("lang") == "en"
    await page.keyboard.press("Tab")
    focused = page.locator(":focus")
    await expect(focused).to_have_text("Skip to content")
    await page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    header = page.get_by_role("navigation", name="Main")
    await expect(header.get_by_role("link", name="Log in")).to_be_visible()
    await expect(header.get_by_role("link", name="Register")).to_be_visible()
    await expect(header.get_by_role("link", name="My orders")).to_have_count(0)
    await browsing.check(page, "home")


async def test_a_missing_page_is_a_page_that_says_so(browsing: Browsing) -> None:
    page = await browsing.page()
    response = await page.goto("/listings/2147483000")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("listing not found")
    await browsing.check(page, "not found")


async def _log_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("header")).to_contain_text("Logged in as")


async def test_every_back_office_page(browsing: Browsing, live: LiveServer) -> None:
    name = f"Smoke Souk {uuid.uuid4().hex[:6]}"

    def world() -> tuple[str, int]:
        with store_team(live, name=name) as team:
            admin = platform_admin(live)
            admin.close()
            return admin.email, team.id

    email, store_id = await asyncio.to_thread(world)
    page = await browsing.page()
    await _log_in(page, email)
    await page.goto("/admin")
    await browsing.check(page, "back office")

    await page.get_by_role("link", name=f"platform rate for {name}").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Commission: {name}")
    await page.get_by_label("Rate in basis points").fill("a lot")
    await page.get_by_label("Fixed amount per order").fill("usd 0.30")
    await page.get_by_role("button", name="Save commission").click()
    await expect(page.locator("#f-bps-error")).not_to_be_empty()
    await expect(page.get_by_label("Fixed amount per order")).to_have_value("usd 0.30")
    await browsing.check(page, "commission, inline error")
    await page.get_by_label("Rate in basis points").fill("275")
    await page.get_by_role("button", name="Save commission").click()
    await expect(page.locator("#commission-now dd").first).to_contain_text("2.75%")
    assert live.scalar("SELECT platform_fee_bps FROM store WHERE id = :s", s=store_id) == 275

    await page.goto("/admin/reports/fees?from=2026-02-02&to=2026-02-01")
    await expect(page.get_by_role("alert")).to_contain_text("from must not be after to")
    await browsing.check(page, "fee report, refused period")
    await page.goto("/admin/transfers")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Transfers: failed")
    await browsing.check(page, "failed transfers")
    await page.goto("/admin/events")
    await browsing.check(page, "webhook inbox")
    await page.goto("/admin/outbox")
    await expect(page.locator("header")).to_contain_text("Logged in as Platform Admin")
    await browsing.check(page, "email outbox")

    await page.goto("/admin/webhook-endpoints")
    await page.get_by_label("URL").fill("ftp://example.com/hooks")
    await page.get_by_label(re.compile(r"order\.paid:")).check()
    await page.get_by_role("button", name="Register endpoint").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await expect(page.get_by_label(re.compile(r"order\.paid:"))).to_be_checked()
    await browsing.check(page, "webhook endpoints, refused URL")
    await page.get_by_label("URL").fill("https://example.com/souq-hooks")
    await page.get_by_role("button", name="Register endpoint").click()
    await expect(page.locator("#secret")).to_contain_text("whsec_")
    await browsing.check(page, "webhook endpoint made, its secret")
    await page.get_by_role("link", name="https://example.com/souq-hooks").first.click()
    await page.get_by_role("button", name="Disable").click()
    await expect(page.locator("#endpoint-state")).to_contain_text("disabled")
    await page.get_by_role("button", name="Rotate secret").click()
    await expect(page.locator("#secret")).to_contain_text("whsec_")
    await browsing.check(page, "webhook endpoint")
    await page.get_by_role("button", name="Delete endpoint").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Webhook endpoints")


async def test_the_back_office_refuses_everyone_else(browsing: Browsing, live: LiveServer) -> None:
    owner = await asyncio.to_thread(api_user, live, name="Store Owner")
    owner.close()
    page = await browsing.page()
    await _log_in(page, owner.email)
    await expect(page.get_by_role("link", name="Back office")).to_have_count(0)
    for path in ("/admin/reports/fees", "/admin/events", "/admin/webhook-endpoints"):
        response = await page.goto(path)
        assert response is not None and response.status == 403, path
        await expect(page.get_by_role("alert")).to_contain_text("only platform admins")
    await browsing.check(page, "back office refused")
