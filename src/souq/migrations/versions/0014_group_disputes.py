"""disputes and dashboard refunds of a checkout group's charge: one row per order

One Stripe dispute (or refund) of a group's charge concerns every order the charge paid, so a
dispute row is unique per (Stripe dispute, order) and a refund row per (Stripe refund, order)
instead of per Stripe object alone. A dispute's recovery may be taken off the store's held
transfer instead of reversing a sent one (`held_reduced`).

Revision ID: 0014
Revises: 0011
Create Date: 2026-11-29 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dispute", schema=None) as batch_op:
        batch_op.drop_constraint("uq_dispute_stripe_dispute_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_dispute_stripe_dispute_order", ["stripe_dispute_id", "order_id"]
        )
        batch_op.add_column(
            sa.Column("held_reduced", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.drop_constraint("uq_refund_stripe_refund_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_refund_stripe_refund_order", ["stripe_refund_id", "order_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.drop_constraint("uq_refund_stripe_refund_order", type_="unique")
        batch_op.create_unique_constraint("uq_refund_stripe_refund_id", ["stripe_refund_id"])
    with op.batch_alter_table("dispute", schema=None) as batch_op:
        batch_op.drop_column("held_reduced")
        batch_op.drop_constraint("uq_dispute_stripe_dispute_order", type_="unique")
        batch_op.create_unique_constraint("uq_dispute_stripe_dispute_id", ["stripe_dispute_id"])
