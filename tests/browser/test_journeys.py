"""The journeys a person takes through the pages, in Chromium, each page checked with axe-core
and at a phone's width, each journey ending with a screenshot (test-artifacts/)."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
import sqlalchemy as sa
from playwright.async_api import Page, expect

from tests.browser.conftest import Browsing
from tests.helpers import PASSWORD, StoreTeam, api_user, store_team, unique_email
from tests.ledger.money_helpers import paid_order
from tests.payments.stripe_helpers import (
    clear_faults,
    failed_account_event,
    flush,
    listing,
    onboarded_team,
    platform_admin,
)
from tests.servers import LiveServer

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _name(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


async def _ready_listing(live: LiveServer, *, price: str, stock: int | None = None) -> int:
    """A listing of a store that finished onboarding (set up through the API)."""

    def make() -> int:
        team = onboarded_team(live, name=_name("Souk"))
        try:
            return listing(team, price=price, stock=stock, name=_name("Brass lantern"))
        finally:
            team.close()

    return await asyncio.to_thread(make)


async def _log_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()


def _order_status(live: LiveServer, listing_id: int) -> list[str]:
    return [
        row.payment_status
        for row in live.rows(
            "SELECT o.payment_status FROM orders o JOIN order_item i ON i.order_id = o.id "
            "WHERE i.listing_id = :l ORDER BY o.id",
            l=listing_id,
        )
    ]


async def test_a_seller_registers_opens_a_store_sets_up_payouts_and_adds_a_listing(
    browsing: Browsing,
) -> None:
    page = await browsing.page()
    email = unique_email("seller")
    await page.goto("/register")
    await browsing.check(page, "register")
    await page.get_by_label("Name").fill("Samira Seller")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Register").click()

    # The header says who is logged in; the dashboard offers to open a store.
    await expect(page.locator("header")).to_contain_text("Logged in as Samira Seller")
    await browsing.check(page, "dashboard, no store")
    store_name = _name("Atlas Ceramics")
    await page.get_by_label("Store name").fill(store_name)
    await page.get_by_label("Country (two letters)").fill("ZZ")
    await page.get_by_role("button", name="Open store").click()
    # Refused inline: the message beside the field, and what was typed is still there.
    await expect(page.locator("#f-country-error")).to_have_text("not a country Stripe supports")
    await expect(page.get_by_label("Store name")).to_have_value(store_name)
    await browsing.check(page, "open store, inline error")
    await page.get_by_label("Country (two letters)").fill("US")
    await page.get_by_role("button", name="Open store").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(store_name)
    await expect(page.locator("#payments-step")).to_have_attribute(
        "data-next-step", "set_up_payouts"
    )
    await browsing.check(page, "store overview")
    await page.get_by_role("link", name="Payments settings").click()
    await browsing.check(page, "payments settings")
    await page.get_by_role("button", name="Set up payouts").click()

    # The sandbox's hosted onboarding page, then back to Souq.
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Set up payouts")
    await browsing.check(page, "sandbox onboarding")
    await page.get_by_role("button", name="Submit and finish").click()
    await expect(page.locator("#payments-status")).to_have_attribute(
        "data-next-step", "open_dashboard"
    )
    await browsing.check(page, "back from onboarding")

    await page.get_by_role("link", name="← Back to the store").click()
    await page.get_by_role("link", name="Add a listing").click()
    await page.get_by_label("Name").fill("Tagine pot")
    await page.get_by_label("Price").fill("12.345")
    await page.get_by_label("Stock").fill("3")
    await page.get_by_role("button", name="Add listing").click()
    await expect(page.locator("#f-price-error")).not_to_be_empty()
    await expect(page.get_by_label("Price")).to_have_value("12.345")
    await expect(page.get_by_label("Name")).to_have_value("Tagine pot")
    await browsing.check(page, "new listing, inline error")
    await page.get_by_label("Price").fill("45.00")
    await page.get_by_role("button", name="Add listing").click()

    row = page.locator("tr", has_text="Tagine pot")
    await expect(row).to_contain_text("$45.00")
    await expect(row).to_contain_text("on sale")
    await browsing.check(page, "store with its listing")
    # It is in the shop now.
    await page.goto("/")
    await page.get_by_label("Store").select_option(label=store_name)
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#listings")).to_contain_text("Tagine pot")
    await browsing.check(page, "shop filtered by the new store")


async def test_a_guest_buys_with_4242_and_sees_the_order_paid(
    browsing: Browsing, live: LiveServer
) -> None:
    listing_id = await _ready_listing(live, price="30.00", stock=4)
    page = await browsing.page()
    await page.goto(f"/listings/{listing_id}")
    await expect(page.locator("#stock")).to_have_attribute("data-state", "low_stock")
    await expect(page.locator("#price")).to_have_text("$30.00")
    await browsing.check(page, "listing")
    await page.get_by_label("Quantity").fill("2")
    await page.get_by_label("Your email (for the receipt)").fill("guest@example.com")
    await page.get_by_role("button", name="Buy now").click()

    # The sandbox's checkout page.
    await expect(page.get_by_role("heading", level=1)).to_have_text("Pay $60.00")
    await browsing.check(page, "sandbox checkout")
    await page.get_by_label("Card number").fill("4242 4242 4242 4242")
    await page.get_by_role("button", name=re.compile(r"^Pay \$60\.00")).click()

    status = page.locator("#order-status")
    await expect(status).to_have_attribute("data-status", "paid", timeout=30_000)
    await expect(status).to_contain_text("is paid")
    await expect(page.locator("#order-total")).to_have_text("$60.00")
    await browsing.check(page, "order paid")
    assert _order_status(live, listing_id) == ["paid"]

    await page.goto(f"/listings/{listing_id}")
    await expect(page.locator("#stock")).to_contain_text("Only 2 left")


async def test_a_declined_card_leaves_the_order_unpaid(
    browsing: Browsing, live: LiveServer
) -> None:
    listing_id = await _ready_listing(live, price="9.50")
    page = await browsing.page()
    await page.goto(f"/listings/{listing_id}")
    await expect(page.locator("#stock")).to_have_attribute("data-state", "in_stock")
    await page.get_by_label("Your email (for the receipt)").fill("declined@example.com")
    await page.get_by_role("button", name="Buy now").click()
    await page.get_by_label("Card number").fill("4000 0000 0000 0002")
    await page.get_by_role("button", name=re.compile(r"^Pay \$9\.50")).click()

    await expect(page.get_by_role("alert")).to_contain_text("declined")
    await browsing.check(page, "sandbox card declined")
    assert _order_status(live, listing_id) == ["pending"]

    # Backing out cancels the order and says nothing was charged.
    await page.get_by_role("link", name="Cancel and go back").click()
    await expect(page.locator("#order-status")).to_have_attribute("data-status", "canceled")
    await browsing.check(page, "checkout canceled")
    assert _order_status(live, listing_id) == ["canceled"]


async def test_a_buyer_finds_a_listing_pays_and_sees_it_in_my_orders(
    browsing: Browsing, live: LiveServer
) -> None:
    listing_id = await _ready_listing(live, price="5.25")
    title = live.scalar("SELECT name FROM listing WHERE id = :i", i=listing_id)
    buyer = await asyncio.to_thread(api_user, live, name="Bashir Buyer")
    buyer.close()
    page = await browsing.page()
    await _log_in(page, buyer.email)
    await page.goto("/")
    await page.get_by_label("Search").fill(title)
    await page.get_by_label("Currency").select_option("usd")
    await page.get_by_role("button", name="Search").click()
    await browsing.check(page, "shop search")
    await page.get_by_role("link", name=title).click()
    await page.get_by_role("button", name="Buy now").click()
    await page.get_by_label("Card number").fill("4242 4242 4242 4242")
    await page.get_by_role("button", name="Pay $5.25").click()
    await expect(page.locator("#order-status")).to_have_attribute(
        "data-status", "paid", timeout=30_000
    )

    await page.get_by_role("link", name="My orders").click()
    row = page.locator("#orders tbody tr").first
    await expect(row).to_have_attribute("data-status", "paid")
    await expect(row).to_contain_text("$5.25")
    await browsing.check(page, "my orders")
    await row.get_by_role("link").click()
    await expect(page.locator("#order-items")).to_contain_text(title)
    # The buyer sees what they paid, never the store's fees.
    await expect(page.locator("#split")).to_have_count(0)
    await browsing.check(page, "my order")


async def test_account_tokens_and_logging_out_everywhere(
    browsing: Browsing, live: LiveServer
) -> None:
    user = await asyncio.to_thread(api_user, live, name="Tariq Tokens")
    user.close()
    page = await browsing.page()
    await _log_in(page, user.email)
    await page.get_by_role("link", name="Account").click()
    await page.get_by_label("Name").fill("inventory script")
    await page.get_by_label("Expires after (days)").fill("forever")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator("#f-expires_in_days-error")).not_to_be_empty()
    await expect(page.get_by_label("Name")).to_have_value("inventory script")
    await page.get_by_label("Expires after (days)").fill("30")
    await page.get_by_role("button", name="Create token").click()
    token = (await page.locator("#new-token code").first.inner_text()).strip()
    await browsing.check(page, "new API token")
    headers = {"Authorization": f"Bearer {token}"}
    with live.client(headers=headers) as api:
        assert api.get("/api/me").json()["email"] == user.email
    await page.goto("/account")
    await expect(page.locator("#new-token")).to_have_count(0)
    await page.get_by_role("button", name="Revoke token inventory script").click()
    await expect(page.locator("#tokens")).not_to_contain_text("inventory script")
    with live.client(headers=headers) as api:
        assert api.get("/api/me").status_code == 401

    # A second browser logged in as the same person is logged out by "everywhere".
    other = await browsing.another_browser()
    try:
        elsewhere = await other.new_page()
        await _log_in(elsewhere, user.email)
        await expect(elsewhere.locator("header")).to_contain_text("Tariq Tokens")
        await page.get_by_role("button", name="Log out everywhere").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
        await elsewhere.goto("/dashboard")
        await expect(elsewhere).to_have_url(re.compile(r"/login\?next="))
    finally:
        await other.close()


async def test_the_back_office_shows_stores_and_resolves_an_order_under_review(
    browsing: Browsing, live: LiveServer
) -> None:
    listing_id = await _ready_listing(live, price="20.00")
    admin = await asyncio.to_thread(api_user, live, name="Platform Admin")
    admin.close()
    with live.db.begin() as conn:
        conn.execute(
            sa.text('UPDATE "user" SET is_platform_admin = true WHERE id = :i'), {"i": admin.id}
        )
        store_id = conn.execute(
            sa.text("SELECT store_id FROM listing WHERE id = :l"), {"l": listing_id}
        ).scalar_one()
        order_id = conn.execute(
            sa.text(
                "INSERT INTO orders (store_id, customer_email, currency, subtotal_amount, "
                "total_amount, platform_fee_amount, payment_status, holds_stock, review_reason, "
                "created_at) VALUES (:s, 'b@example.com', 'usd', 2000, 2000, 100, 'needs_review', "
                "false, 'amount 200 instead of 2000', CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"s": store_id},
        ).scalar_one()
    page = await browsing.page()
    await _log_in(page, admin.email)
    await page.get_by_role("link", name="Back office").click()
    await expect(page.locator(f'#admin-stores tr[data-store-id="{store_id}"]')).to_contain_text(
        "enabled"
    )
    await browsing.check(page, "back office stores")
    await page.get_by_role("link", name="Orders needing review").click()
    row = page.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row).to_contain_text("amount 200 instead of 2000")
    await browsing.check(page, "orders needing review")
    await row.get_by_label("Why").fill("refunded in Stripe by hand")
    await row.get_by_role("button", name=re.compile("^Cancel")).click()
    await expect(page.locator(f'tr[data-order-id="{order_id}"]')).to_have_count(0)
    assert live.scalar("SELECT payment_status FROM orders WHERE id = :i", i=order_id) == "canceled"


async def test_an_owner_manages_members_and_a_listings_stock(
    browsing: Browsing, live: LiveServer
) -> None:
    owner = await asyncio.to_thread(api_user, live, name="Olga Owner")
    invitee = await asyncio.to_thread(api_user, live, name="Ines Invitee")
    owner.close()
    invitee.close()
    store_name = _name("Fez Leather")
    page = await browsing.page()
    await _log_in(page, owner.email)
    await page.get_by_label("Store name").fill(store_name)
    await page.get_by_role("button", name="Open store").click()
    await page.get_by_label("Email").fill(invitee.email)
    await page.get_by_label("Role", exact=True).select_option("admin")
    await page.get_by_role("button", name="Send invitation").click()
    await expect(page.locator("#invitations + .table-wrap")).to_contain_text(invitee.email)

    # The invitee joins from their own dashboard, in a browser of their own.
    other = await browsing.another_browser()
    try:
        theirs = await other.new_page()
        await _log_in(theirs, invitee.email)
        await expect(theirs.locator("#invitations")).to_contain_text(store_name)
        await browsing.check(theirs, "an invitation to answer")
        await theirs.get_by_role("button", name=f"Join {store_name}").click()
        await expect(theirs.locator("#stores")).to_contain_text(store_name)
    finally:
        await other.close()

    await page.reload()
    member = page.locator(f'tr[data-user-id="{invitee.id}"]')
    await expect(member.get_by_label("Role of Ines Invitee")).to_have_value("admin")
    await member.get_by_label("Role of Ines Invitee").select_option("seller")
    await member.get_by_role("button", name="Change role of Ines Invitee").click()
    await expect(member.get_by_label("Role of Ines Invitee")).to_have_value("seller")
    await browsing.check(page, "members")
    await member.get_by_role("button", name="Remove Ines Invitee").click()
    await expect(page.locator(f'tr[data-user-id="{invitee.id}"]')).to_have_count(0)

    # A listing: sold out once its stock is 0, gone from the shop once deactivated.
    await page.get_by_role("link", name="Add a listing").click()
    await page.get_by_label("Name").fill("Pouf")
    await page.get_by_label("Price").fill("80")
    await page.get_by_role("button", name="Add listing").click()
    await page.get_by_role("link", name="Edit Pouf").click()
    await expect(page.get_by_label("Price")).to_have_value("80.00")
    await page.get_by_label("Stock").fill("0")
    await page.get_by_role("button", name="Save").click()
    row = page.locator("tr", has_text="Pouf")
    await expect(row.locator("td").nth(2)).to_have_text("0")
    await row.get_by_role("link", name="Pouf", exact=True).click()
    await expect(page.locator("#stock")).to_have_attribute("data-state", "sold_out")
    await expect(page.get_by_role("button", name="Buy now")).to_have_count(0)
    await page.go_back()
    await row.get_by_role("button", name="Deactivate Pouf").click()
    await expect(row).to_contain_text("inactive")
    listing_id = int(await row.get_attribute("data-listing-id") or 0)
    assert live.scalar("SELECT active FROM listing WHERE id = :i", i=listing_id) in (False, 0)


async def _ready_team(live: LiveServer, name: str) -> tuple[StoreTeam, int]:
    """A store that finished onboarding, with one listing (its team's clients are open: close
    the team after)."""

    def make() -> tuple[StoreTeam, int]:
        team = onboarded_team(live, name=_name(name))
        return team, listing(team, price="25.00", stock=10, name=_name("Kilim"))

    return await asyncio.to_thread(make)


async def _pay(page: Page, card: str, total: str) -> None:
    """On the sandbox's checkout page: pay `total` with `card`."""
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Pay {total}")
    await page.get_by_label("Card number").fill(card)
    await page.get_by_role("button", name=re.compile(rf"^Pay {re.escape(total)}")).click()


async def test_a_guest_fills_a_cart_from_two_stores_and_pays_once(
    browsing: Browsing, live: LiveServer
) -> None:
    first = await _ready_listing(live, price="30.00", stock=5)
    second = await _ready_listing(live, price="12.50")
    second_store = live.scalar("SELECT store_id FROM listing WHERE id = :i", i=second)
    page = await browsing.page()
    await page.goto(f"/listings/{first}")
    await page.get_by_label("Quantity").fill("2")
    await page.get_by_role("button", name="Add to cart").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
    # The second store's listing, from its store page.
    await page.goto(f"/stores/{second_store}")
    card = page.locator(f'#listings li[data-listing-id="{second}"]')
    await card.get_by_role("button", name=re.compile("^Add to cart")).click()

    # Grouped by store, each with its subtotal; one total for the currency.
    await expect(page.locator(".cart-store")).to_have_count(2)
    first_part = page.locator(".cart-store", has=page.locator(f'tr[data-listing-id="{first}"]'))
    await expect(first_part.locator(".store-subtotal")).to_have_text("$60.00")
    await expect(page.locator('#cart-totals tbody[data-currency="usd"] .total')).to_have_text(
        "$72.50"
    )
    await browsing.check(page, "cart of two stores")

    # A price changed since it was added: checkout is refused (409), the reason beside the
    # item, and updating the item accepts the new price.
    with live.db.begin() as conn:
        conn.execute(sa.text("UPDATE listing SET price_amount = 1300 WHERE id = :i"), {"i": second})
    await page.get_by_label("Your email (for the receipt)").fill("two-stores@example.com")
    await page.get_by_role("button", name="Check out").click()
    await expect(page.locator(f"#problem-{second}")).to_contain_text("the price changed")
    await expect(page.get_by_label("Your email (for the receipt)")).to_have_value(
        "two-stores@example.com"
    )
    await browsing.check(page, "cart with a changed price")
    row = page.locator(f'tr[data-listing-id="{second}"]')
    await row.get_by_role("button", name=re.compile("^Update")).click()
    await expect(page.locator(f"#problem-{second}")).to_have_count(0)
    await expect(page.locator('#cart-totals tbody[data-currency="usd"] .total')).to_have_text(
        "$73.00"
    )
    # More than the store has left: said beside the item until the quantity fits.
    quantity = page.locator(f'tr[data-listing-id="{first}"]').get_by_label(
        re.compile("^Quantity of")
    )
    await quantity.fill("6")
    await (
        page.locator(f'tr[data-listing-id="{first}"]')
        .get_by_role("button", name=re.compile("^Update"))
        .click()
    )
    await expect(page.locator(f"#problem-{first}")).to_contain_text("only 5 left")
    await quantity.fill("2")
    await (
        page.locator(f'tr[data-listing-id="{first}"]')
        .get_by_role("button", name=re.compile("^Update"))
        .click()
    )
    await expect(page.locator(f"#problem-{first}")).to_have_count(0)

    await page.get_by_label("Your email (for the receipt)").fill("two-stores@example.com")
    await page.get_by_role("button", name="Check out").click()
    await browsing.check(page, "sandbox checkout of a cart")
    await _pay(page, "4242 4242 4242 4242", "$73.00")

    status = page.locator("#group-status")
    await expect(status).to_have_attribute("data-status", "paid", timeout=30_000)
    await expect(status).to_contain_text("confirmed")
    await expect(page.locator('.order-status[data-status="paid"]')).to_have_count(2)
    await browsing.check(page, "cart paid")
    assert _order_status(live, first) == ["paid"]
    assert _order_status(live, second) == ["paid"]
    await page.goto("/cart")
    await expect(page.locator("#cart-empty")).to_be_visible()


async def test_the_seller_ships_and_refunds_part_of_an_order_and_the_buyer_sees_it(
    browsing: Browsing, live: LiveServer
) -> None:
    team, listing_id = await _ready_team(live, "Fes Rugs")
    buyer = await asyncio.to_thread(api_user, live, name="Rania Buyer")
    buyer.close()
    page = await browsing.page()
    await _log_in(page, buyer.email)
    await page.goto(f"/listings/{listing_id}")
    await page.get_by_role("button", name="Add to cart").click()
    await page.get_by_role("button", name="Check out").click()
    await _pay(page, "4242 4242 4242 4242", "$25.00")
    await expect(page.locator("#order-status")).to_have_attribute(
        "data-status", "paid", timeout=30_000
    )
    order_id = live.scalar(
        "SELECT o.id FROM orders o JOIN order_item i ON i.order_id = o.id WHERE i.listing_id = :l",
        l=listing_id,
    )

    seller_browser = await browsing.another_browser()
    try:
        seller = await seller_browser.new_page()
        await _log_in(seller, team.owner.email)
        await seller.goto(f"/dashboard/stores/{team.id}")
        await seller.get_by_role("link", name="Orders", exact=True).click()
        await seller.get_by_role("link", name=f"#{order_id}").click()
        await expect(seller.locator('#waterfall [data-step="charged"]')).to_have_text("$25.00")
        await browsing.check(seller, "order detail with the waterfall")

        await seller.get_by_label("Carrier").fill("DHL")
        await seller.get_by_label("Tracking number").fill("JD0146000042")
        await seller.get_by_role("button", name="Save shipping").click()
        await expect(seller.locator("#fulfilment-status")).to_have_attribute(
            "data-status", "shipped"
        )

        # A refund beyond what was paid is refused beside the field, the amount kept.
        await seller.get_by_label("Amount (USD)").fill("99.00")
        await seller.get_by_role("button", name="Preview the refund").click()
        await expect(seller.locator("#f-amount-error")).to_contain_text("at most")
        await expect(seller.get_by_label("Amount (USD)")).to_have_value("99.00")
        await seller.get_by_label("Amount (USD)").fill("10.00")
        await seller.get_by_label("Reason").select_option("requested_by_customer")
        await seller.get_by_role("button", name="Preview the refund").click()
        preview = seller.locator("#refund-preview")
        await expect(preview.locator('[data-party="buyer"]')).to_have_text("$10.00")
        await expect(preview.locator('[data-party="store"]')).to_contain_text("$")
        await browsing.check(seller, "refund preview")
        # Nothing is refunded by a preview.
        assert live.scalar("SELECT count(*) FROM refund WHERE order_id = :i", i=order_id) == 0
        await seller.get_by_role("button", name="Refund $10.00").click()
        refund_row = seller.locator("#refund-list tbody tr").first
        await expect(refund_row).to_contain_text("$10.00")
        await expect(seller.locator("#order-status")).to_have_attribute(
            "data-status", "partially_refunded"
        )
        await expect(seller.locator('#waterfall [data-step="refunded"]')).to_have_text("$10.00")
        await browsing.check(seller, "order partly refunded")
        # Submitting the same confirmation again makes no second refund.
        await seller.go_back()
        await seller.get_by_role("button", name="Refund $10.00").click()
        await expect(seller.locator("#refund-list tbody tr")).to_have_count(1)
        assert live.scalar("SELECT count(*) FROM refund WHERE order_id = :i", i=order_id) == 1
    finally:
        await seller_browser.close()
        team.close()

    await page.goto("/orders")
    row = page.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(row).to_have_attribute("data-status", "partially_refunded")
    await expect(row).to_contain_text("shipped (DHL)")
    await row.get_by_role("link").click()
    await expect(page.locator("#fulfilment-status")).to_contain_text("JD0146000042")
    await expect(page.locator("#refunds")).to_contain_text("$10.00")
    await browsing.check(page, "buyer's order shipped and refunded")
    # The buyer is not the store: its dashboard page of the order does not exist for them.
    response = await page.goto(f"/dashboard/orders/{order_id}")
    assert response is not None and response.status == 404


async def test_a_disputed_payment_is_answered_with_evidence(
    browsing: Browsing, live: LiveServer
) -> None:
    team, listing_id = await _ready_team(live, "Tunis Brass")
    page = await browsing.page()
    await page.goto(f"/listings/{listing_id}")
    await page.get_by_label("Your email (for the receipt)").fill("chargeback@example.com")
    await page.get_by_role("button", name="Buy now").click()
    await _pay(page, "4000 0000 0000 0259", "$25.00")
    # Paid, and disputed as soon as the dispute's webhook is processed.
    await expect(page.locator("#order-status")).to_have_attribute(
        "data-status", re.compile("^(paid|disputed)$"), timeout=30_000
    )
    await asyncio.to_thread(flush, live)  # the dispute's webhook
    try:
        await _log_in(page, team.owner.email)
        await page.goto(f"/dashboard/disputes?storeId={team.id}")
        row = page.locator("#disputes tbody tr").first
        await expect(row).to_have_attribute("data-status", "needs_response")
        await expect(row).to_contain_text("$25.00")
        await browsing.check(page, "disputes")
        await row.get_by_role("link", name=re.compile("^Answer")).click()
        dispute = page.locator("section[data-dispute-id]")
        await dispute.get_by_role("button", name="Submit evidence").click()
        # The browser itself insists on an answer (required); an empty one never leaves.
        await expect(dispute).to_have_attribute("data-status", "needs_response")
        await dispute.get_by_label("Your answer to the bank").fill("winning_evidence")
        await dispute.get_by_role("button", name="Submit evidence").click()
        answered = page.locator("section[data-dispute-id]")
        await expect(answered).not_to_have_attribute("data-status", "needs_response")
        await expect(answered.locator(".evidence")).to_have_text("winning_evidence")
        await browsing.check(page, "dispute answered")
    finally:
        team.close()


async def test_a_store_statement_has_a_chart_a_table_and_a_csv(
    browsing: Browsing, live: LiveServer
) -> None:
    team, _ = await _ready_team(live, "Sfax Olive")
    try:
        await asyncio.to_thread(lambda: paid_order(live, team, price="40.00", quantity=1))
        page = await browsing.page()
        await _log_in(page, team.seller.email)
        await page.goto(f"/dashboard/statements?storeId={team.id}")
        table = page.locator('.statement-table[data-currency="usd"]')
        await expect(table.locator("tbody tr")).to_have_count(1)
        await expect(table).to_contain_text("$40.00")
        await expect(page.locator("#chart-usd .series rect")).to_have_count(3)
        await browsing.check(page, "statement")
        async with page.expect_download() as download:
            await page.get_by_role("link", name="Download as CSV").click()
        csv_file = await (await download.value).path()
        lines = csv_file.read_text().splitlines()
        assert lines[0].startswith("day,currency,orders,gross")
        assert ",usd,1,4000," in lines[1]
        # A day that is not a day: said beside the field, not a crash.
        await page.get_by_label("From (YYYY-MM-DD)").fill("yesterday")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#f-from-error")).to_have_text("a day as YYYY-MM-DD")
        await expect(page.get_by_label("From (YYYY-MM-DD)")).to_have_value("yesterday")
    finally:
        team.close()


def _failed_account_event(live: LiveServer) -> tuple[int, str]:
    """A store whose account.updated event failed (Stripe answering errors until
    `clear_faults`): the store's id and the event's id."""
    with store_team(live, name=_name("Outage Bazaar")) as team:
        return team.id, failed_account_event(live, team)


@pytest.mark.fresh_server
async def test_the_platform_admin_reads_the_fee_report_and_replays_a_failed_webhook(
    browsing: Browsing, live: LiveServer
) -> None:
    def sales() -> int:
        with onboarded_team(live, name=_name("Marrakech Spices")) as team:
            paid_order(live, team, price="40.00", quantity=1)
            paid_order(live, team, price="12.50", quantity=2)
            return team.id

    store_id = await asyncio.to_thread(sales)
    admin = await asyncio.to_thread(platform_admin, live)
    admin.close()
    page = await browsing.page()
    await _log_in(page, admin.email)
    await page.get_by_role("link", name="Back office").click()
    await page.get_by_role("link", name="Fee report").click()
    await page.get_by_label("Store").select_option(str(store_id))
    await page.get_by_role("button", name="Show").click()

    # The chart (SVG drawn by the server) and the same numbers in the table beside it.
    chart = page.locator("#chart-usd").get_by_role("img")
    await expect(chart).to_be_visible()
    await expect(page.locator('#chart-usd [data-series="Gross volume"] rect')).to_have_count(1)
    table = page.locator("#fees-usd")
    await expect(table).to_be_visible()
    await expect(table.locator("tfoot td").first).to_have_text("$65.00")
    csv = await page.request.get(await page.locator("#csv").get_attribute("href") or "")
    assert csv.ok and f",usd,{store_id},6500," in await csv.text()
    await browsing.check(page, "fee report")

    # Stripe fails while a store's account.updated event is handled: the inbox shows it.
    try:
        failing_store, event_id = await asyncio.to_thread(_failed_account_event, live)
        await page.get_by_role("link", name="← Back office").click()
        await page.get_by_role("link", name="Webhook inbox").click()
        await page.get_by_role("link", name="not processed").click()
        row = page.locator(f'#events tr[data-event-id="{event_id}"]')
        await expect(row).to_have_attribute("data-state", "failed")
        await expect(row).to_contain_text("StripeUnavailable")
        await browsing.check(page, "webhook inbox, a failed event")
    finally:
        await asyncio.to_thread(clear_faults, live)

    # Stripe is back: Replay runs the handler again, and the store can take payments.
    await row.get_by_role("button", name=f"Replay {event_id}").click()
    replayed = page.locator("#replayed")
    await expect(replayed).to_have_attribute("data-processed", "yes")
    await expect(replayed).to_contain_text("processed")
    await expect(page.locator(f'#events tr[data-event-id="{event_id}"]')).to_have_attribute(
        "data-state", "processed"
    )
    assert live.scalar(
        "SELECT stripe_charges_enabled FROM store WHERE id = :s", s=failing_store
    ) in (True, 1)
    await browsing.check(page, "webhook inbox, replayed")
