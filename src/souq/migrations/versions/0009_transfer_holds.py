"""holding sellers' money until fulfilment

A store's own transfer timing; whether an order's transfer waits for fulfilment; its fulfilment (status, carrier, tracking number).
The transfer status `held` needs no change (a non-native enum without a constraint).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("store", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transfer_timing", sa.String(length=20), nullable=True))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "transfer_on_fulfilment",
                sa.Boolean(),
                server_default=sa.text("false"),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "fulfilment_status",
                sa.Enum("shipped", "delivered", name="fulfilment_status", native_enum=False, length=20),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("fulfilment_carrier", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("fulfilment_tracking_number", sa.String(length=100), nullable=True)
        )
        batch_op.add_column(sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("fulfilled_at")
        batch_op.drop_column("fulfilment_tracking_number")
        batch_op.drop_column("fulfilment_carrier")
        batch_op.drop_column("fulfilment_status")
        batch_op.drop_column("transfer_on_fulfilment")
    with op.batch_alter_table("store", schema=None) as batch_op:
        batch_op.drop_column("transfer_timing")
