"""carts: commission rules frozen on each order and per-store overrides; carts and their
items; checkout groups (one payment for several stores) and each store's transfer

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:35.302832
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cart',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('key_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_cart_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cart')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_cart_key_hash')),
    sa.UniqueConstraint('user_id', name=op.f('uq_cart_user_id'))
    )
    op.create_table('checkout_group',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('customer_email', sa.String(length=320), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total_amount', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'session_unknown', 'paid', 'needs_review', 'failed', 'canceled', name='checkout_group_status', native_enum=False, length=30), nullable=False),
    sa.Column('stripe_checkout_session_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_charge_id', sa.String(length=255), nullable=True),
    sa.Column('review_reason', sa.String(length=1000), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_checkout_group_user_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkout_group')),
    sa.UniqueConstraint('stripe_checkout_session_id', name=op.f('uq_checkout_group_stripe_checkout_session_id'))
    )
    with op.batch_alter_table('checkout_group', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkout_group_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkout_group_user_id'), ['user_id'], unique=False)

    op.create_table('cart_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cart_id', sa.Integer(), nullable=False),
    sa.Column('listing_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('seen_unit_price', sa.Integer(), nullable=False),
    sa.Column('seen_currency', sa.String(length=3), nullable=False),
    sa.ForeignKeyConstraint(['cart_id'], ['cart.id'], name=op.f('fk_cart_item_cart_id_cart'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['listing_id'], ['listing.id'], name=op.f('fk_cart_item_listing_id_listing'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cart_item')),
    sa.UniqueConstraint('cart_id', 'listing_id', name='uq_cart_item_cart_listing')
    )
    with op.batch_alter_table('cart_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cart_item_cart_id'), ['cart_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cart_item_listing_id'), ['listing_id'], unique=False)

    op.create_table('store_transfer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('checkout_group_id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('destination_account_id', sa.String(length=255), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.Enum('pending', 'failed', 'sent', name='transfer_status', native_enum=False, length=20), nullable=False),
    sa.Column('stripe_transfer_id', sa.String(length=255), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('refusals', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['checkout_group_id'], ['checkout_group.id'], name=op.f('fk_store_transfer_checkout_group_id_checkout_group'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_store_transfer_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['store_id'], ['store.id'], name=op.f('fk_store_transfer_store_id_store')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_store_transfer')),
    sa.UniqueConstraint('order_id', name=op.f('uq_store_transfer_order_id'))
    )
    with op.batch_alter_table('store_transfer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_store_transfer_checkout_group_id'), ['checkout_group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_store_transfer_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_store_transfer_store_id'), ['store_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('commission_bps', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('commission_fixed_amount', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('commission_minimum_amount', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('buyer_fee_bps', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('buyer_fee_amount', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('checkout_group_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_checkout_group_id'), ['checkout_group_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_orders_checkout_group_id_checkout_group'), 'checkout_group', ['checkout_group_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('store', schema=None) as batch_op:
        batch_op.add_column(sa.Column('commission_fixed', sa.JSON(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('commission_minimum', sa.JSON(), server_default='{}', nullable=False))

def downgrade() -> None:
    with op.batch_alter_table('store', schema=None) as batch_op:
        batch_op.drop_column('commission_minimum')
        batch_op.drop_column('commission_fixed')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_orders_checkout_group_id_checkout_group'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_orders_checkout_group_id'))
        batch_op.drop_column('checkout_group_id')
        batch_op.drop_column('buyer_fee_amount')
        batch_op.drop_column('buyer_fee_bps')
        batch_op.drop_column('commission_minimum_amount')
        batch_op.drop_column('commission_fixed_amount')
        batch_op.drop_column('commission_bps')

    with op.batch_alter_table('store_transfer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_store_transfer_store_id'))
        batch_op.drop_index(batch_op.f('ix_store_transfer_status'))
        batch_op.drop_index(batch_op.f('ix_store_transfer_checkout_group_id'))

    op.drop_table('store_transfer')
    with op.batch_alter_table('cart_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cart_item_listing_id'))
        batch_op.drop_index(batch_op.f('ix_cart_item_cart_id'))

    op.drop_table('cart_item')
    with op.batch_alter_table('checkout_group', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkout_group_user_id'))
        batch_op.drop_index(batch_op.f('ix_checkout_group_status'))

    op.drop_table('checkout_group')
    op.drop_table('cart')
