"""a failed payout's failure code, beside its message

Stripe gives a failed payout a `failure_code` (`no_account`, `account_closed`, …) and a
`failure_message`; the store's statement and the platform's list of failed payouts show both.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("store_payout", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure_code", sa.String(length=50), nullable=True))
        batch_op.create_index("ix_store_payout_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("store_payout", schema=None) as batch_op:
        batch_op.drop_index("ix_store_payout_status")
        batch_op.drop_column("failure_code")
