"""split-cart refunds, disputed orders, dispute recoveries by job, store payouts

A refund row's held reduction and transfer reversal (split carts); the ledger's unique entry
includes the order (one Stripe object, several orders); a dispute's planned recovery and its
attempts. The statuses `disputed` (orders) and `canceled` (store transfers) need no change
(non-native enums without a constraint).

Revision ID: 0011
Revises: 0013
Create Date: 2026-11-29 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_payout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("stripe_payout_id", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("arrival_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unattributed", sa.Integer(), nullable=False),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_payout_id"),
    )
    with op.batch_alter_table("store_payout", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_store_payout_store_id"), ["store_id"], unique=False)
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("held_reduced", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("stripe_reversal_id", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("reversal_refusals", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ledger_entry_object", type_="unique")
        batch_op.create_unique_constraint(
            "uq_ledger_entry_object", ["kind", "stripe_object_id", "party", "order_id"]
        )
    with op.batch_alter_table("dispute", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recovery_due", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("recovery_attempts", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("store_payout", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_store_payout_store_id"))
    op.drop_table("store_payout")
    with op.batch_alter_table("dispute", schema=None) as batch_op:
        batch_op.drop_column("recovery_attempts")
        batch_op.drop_column("recovery_due")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ledger_entry_object", type_="unique")
        batch_op.create_unique_constraint(
            "uq_ledger_entry_object", ["kind", "stripe_object_id", "party"]
        )
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.drop_column("reversal_refusals")
        batch_op.drop_column("stripe_reversal_id")
        batch_op.drop_column("held_reduced")
