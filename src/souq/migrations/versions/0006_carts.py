"""carts: commission rules frozen on each order, per-store commission overrides

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-29 08:48:08.613380
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('commission_bps', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('commission_fixed_amount', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('commission_minimum_amount', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('buyer_fee_bps', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('buyer_fee_amount', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('store', schema=None) as batch_op:
        batch_op.add_column(sa.Column('commission_fixed', sa.JSON(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('commission_minimum', sa.JSON(), server_default='{}', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('store', schema=None) as batch_op:
        batch_op.drop_column('commission_minimum')
        batch_op.drop_column('commission_fixed')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('buyer_fee_amount')
        batch_op.drop_column('buyer_fee_bps')
        batch_op.drop_column('commission_minimum_amount')
        batch_op.drop_column('commission_fixed_amount')
        batch_op.drop_column('commission_bps')

