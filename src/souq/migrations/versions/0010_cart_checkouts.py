"""cart checkouts: one per checkout of a cart

The checkout of a cart (its split mode, status, group and the page that pays each order), so a double
click makes one checkout and a per_store checkout's orders know each other.

Revision ID: 0010
Revises: 0012
Create Date: 2026-11-29 12:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cart_checkout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cart_id", sa.Integer(), nullable=True),
        sa.Column("split_mode", sa.String(length=20), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "started", "ready", "failed", name="cart_checkout_status", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("checkout_group_id", sa.Integer(), nullable=True),
        sa.Column("pages", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cart_id"], ["cart.id"], name=op.f("fk_cart_checkout_cart_id_cart"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["checkout_group_id"],
            ["checkout_group.id"],
            name=op.f("fk_cart_checkout_checkout_group_id_checkout_group"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cart_checkout")),
    )
    with op.batch_alter_table("cart_checkout", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cart_checkout_cart_id"), ["cart_id"], unique=False)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cart_checkout_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_orders_cart_checkout_id"), ["cart_checkout_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_orders_cart_checkout_id_cart_checkout"),
            "cart_checkout",
            ["cart_checkout_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_orders_cart_checkout_id_cart_checkout"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_orders_cart_checkout_id"))
        batch_op.drop_column("cart_checkout_id")
    with op.batch_alter_table("cart_checkout", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cart_checkout_cart_id"))
    op.drop_table("cart_checkout")
