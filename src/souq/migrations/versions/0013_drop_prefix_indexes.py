"""drop the single-column indexes that are prefixes of 0004's

`ix_listing_store_id` is the leading column of `ix_listing_store_id_id`, and `ix_orders_store_id`
of `ix_orders_store_id_id`: every look-up by store (and the foreign keys' checks) is served by
the composite index, so the single-column ones only cost writes and space.

Revision ID: 0013
Revises: 0009
Create Date: 2026-11-29 12:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_listing_store_id", table_name="listing")
    op.drop_index("ix_orders_store_id", table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_store_id", "orders", ["store_id"])
    op.create_index("ix_listing_store_id", "listing", ["store_id"])
