"""indexes for the hot queries

The catalogue of one store, a store's orders (by status or not), and the charge.* webhooks'
look-up of a payment by its PaymentIntent: each was a scan that grew with the table
(measured with `python -m bench.growth`, plans in BENCHMARKS.md).

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-29 05:40:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0004'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_listing_store_id_id', 'listing', ['store_id', 'id'])
    op.create_index('ix_orders_store_id_id', 'orders', ['store_id', 'id'])
    op.create_index(
        'ix_orders_store_id_payment_status_id', 'orders', ['store_id', 'payment_status', 'id']
    )
    op.create_index(
        'ix_order_payment_stripe_payment_intent_id', 'order_payment', ['stripe_payment_intent_id']
    )


def downgrade() -> None:
    op.drop_index('ix_order_payment_stripe_payment_intent_id', table_name='order_payment')
    op.drop_index('ix_orders_store_id_payment_status_id', table_name='orders')
    op.drop_index('ix_orders_store_id_id', table_name='orders')
    op.drop_index('ix_listing_store_id_id', table_name='listing')
