"""The browser itself works: the home page opens, passes axe, fits a phone."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Browsing

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_home_page_opens_in_chromium(browsing: Browsing) -> None:
    page = await browsing.page()
    await page.goto("/")
    assert await page.locator("html").get_attribute("lang") == "en"
    await browsing.check(page, "home")
