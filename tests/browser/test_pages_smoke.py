"""The browser itself works, and the layout every page shares: `lang`, a skip link that the
keyboard reaches first, the header's links for a visitor who is not logged in."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Browsing

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
