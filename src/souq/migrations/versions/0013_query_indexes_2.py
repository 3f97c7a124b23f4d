"""a buyer's orders indexed; the single-column indexes that are prefixes of 0004's dropped

Every checkout counts the units its buyer holds in unpaid orders (by email, user or address)
while it holds the listing's lock: without an index that was a scan of every order, 50-70 ms at
100,000 orders (EXPLAIN in BENCHMARKS.md). Indexes on the lower-cased email and the address make
it a bitmap look-up of the buyer's own orders (user_id is indexed already). They are not partial
on the status: a prepared statement's generic plan could not prove a partial index's predicate.

`ix_listing_store_id` is the leading column of `ix_listing_store_id_id`, and `ix_orders_store_id`
of `ix_orders_store_id_id`: every look-up by store (and the foreign keys' checks) is served by
the composite index, so the single-column ones only cost writes and space.

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-29 12:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_listing_store_id", table_name="listing")
    op.drop_index("ix_orders_store_id", table_name="orders")
    op.create_index("ix_orders_customer_email_lower", "orders", [sa.text("lower(customer_email)")])
    op.create_index("ix_orders_client_address", "orders", ["client_address"])


def downgrade() -> None:
    op.drop_index("ix_orders_client_address", table_name="orders")
    op.drop_index("ix_orders_customer_email_lower", table_name="orders")
    op.create_index("ix_orders_store_id", "orders", ["store_id"])
    op.create_index("ix_listing_store_id", "listing", ["store_id"])
