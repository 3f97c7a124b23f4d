"""payment correctness: order review and unknown-session states, payments held for review,
ignored webhook events, checkout idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:22:46.354421
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('checkout_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=50), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_checkout_request_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkout_request')),
    sa.UniqueConstraint('scope', 'key', name='uq_checkout_request_scope_key')
    )
    with op.batch_alter_table('checkout_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkout_request_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('order_payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_reason', sa.String(length=1000), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_order_payment_order_id'), type_='unique')
        batch_op.create_index(batch_op.f('ix_order_payment_order_id'), ['order_id'], unique=False)
        batch_op.create_index('uq_order_payment_counted', ['order_id'], unique=True, sqlite_where=sa.text('review_reason IS NULL'), postgresql_where=sa.text('review_reason IS NULL'))

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('destination_account_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('holds_stock', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('review_reason', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('stripe_checked_at', sa.DateTime(timezone=True), nullable=True))
    # Failed and canceled orders gave their stock back; the others still hold it. Existing
    # orders pay the account their store has now.
    op.execute("UPDATE orders SET holds_stock = false WHERE payment_status IN ('failed', 'canceled')")
    op.execute(
        "UPDATE orders SET destination_account_id = "
        "(SELECT stripe_account_id FROM store WHERE store.id = orders.store_id)"
    )

    with op.batch_alter_table('stripe_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ignored_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    # The old schema knows neither state nor payments held for review: unknown sessions go
    # back to pending (reconcile looks them up), reviewed orders to paid or failed, and the
    # payments held for review are dropped (Stripe keeps them).
    op.execute("UPDATE orders SET payment_status = 'pending' WHERE payment_status = 'session_unknown'")
    op.execute(
        "UPDATE orders SET payment_status = CASE WHEN EXISTS (SELECT 1 FROM order_payment p "
        "WHERE p.order_id = orders.id AND p.review_reason IS NULL) THEN 'paid' ELSE 'failed' END "
        "WHERE payment_status = 'needs_review'"
    )
    op.execute("DELETE FROM order_payment WHERE review_reason IS NOT NULL")
    with op.batch_alter_table('stripe_event', schema=None) as batch_op:
        batch_op.drop_column('ignored_reason')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('stripe_checked_at')
        batch_op.drop_column('review_reason')
        batch_op.drop_column('holds_stock')
        batch_op.drop_column('destination_account_id')

    with op.batch_alter_table('order_payment', schema=None) as batch_op:
        batch_op.drop_index('uq_order_payment_counted', sqlite_where=sa.text('review_reason IS NULL'), postgresql_where=sa.text('review_reason IS NULL'))
        batch_op.drop_index(batch_op.f('ix_order_payment_order_id'))
        batch_op.create_unique_constraint(batch_op.f('uq_order_payment_order_id'), ['order_id'])
        batch_op.drop_column('review_reason')

    with op.batch_alter_table('checkout_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkout_request_expires_at'))

    op.drop_table('checkout_request')
