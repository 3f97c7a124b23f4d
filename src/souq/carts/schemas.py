from __future__ import annotations

from pydantic import Field

from souq.schemas import EMAIL_PATTERN, ApiInput, ApiModel

MAX_ID = 2**31 - 1


class CartItemIn(ApiInput):
    listing_id: int = Field(ge=1, le=MAX_ID)
    quantity: int = Field(default=1, ge=1, le=10_000)


class CartQuantityIn(ApiInput):
    quantity: int = Field(ge=1, le=10_000)


class CartProblem(ApiModel):
    field: str = Field(description="items.<listingId>, or currency")
    code: str = Field(
        description="unavailable, price_changed, out_of_stock, store_unavailable, mixed_currencies"
    )
    message: str


class CartLineOut(ApiModel):
    listing_id: int
    store_id: int | None
    title: str | None
    quantity: int
    currency: str
    unit_price: str = Field(description="The price when the item was added or last updated.")
    current_unit_price: str | None = Field(description="The listing's price now.")
    line_total: str
    problem: CartProblem | None


class CartStoreOut(ApiModel):
    store_id: int
    store_name: str
    currency: str
    subtotal: str
    buyer_fee: str


class CartTotalOut(ApiModel):
    currency: str
    subtotal: str
    buyer_fee: str
    total: str


class CartOut(ApiModel):
    items: list[CartLineOut]
    stores: list[CartStoreOut] = Field(description="Each store's subtotal, per currency.")
    totals: list[CartTotalOut] = Field(description="What the buyer pays, per currency.")
    problems: list[CartProblem] = Field(description="What checkout would refuse now.")


class CartCheckoutIn(ApiInput):
    customer_email: str | None = Field(
        default=None,
        max_length=320,
        pattern=EMAIL_PATTERN,
        description="Required for guests; a logged-in buyer's own email otherwise.",
    )


class CartOrderOut(ApiModel):
    order_id: int
    store_id: int
    total: str
    url: str = Field(
        description="The page that pays this order: the group's page when paid with the others."
    )


class CartCheckoutOut(ApiModel):
    checkout_group_id: int | None = Field(
        description="The group paying several stores' orders at once; null for one store."
    )
    url: str = Field(description="The first page to pay.")
    split_mode: str = Field(
        description="single_payment: one payment for every store (a checkout group); "
        "per_store: one payment per store, each order's `url` in turn."
    )
    orders: list[CartOrderOut]
