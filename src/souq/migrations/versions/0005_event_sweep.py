"""the missed-event sweep's cursor per account

PostgreSQL's job engine tables (procrastinate) are applied by `souq db upgrade` after the
Alembic history, not here: they follow procrastinate's version, not Souq's schema.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-29 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0005'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'stripe_event_cursor',
        sa.Column('account', sa.String(length=255), nullable=False),
        sa.Column('created', sa.Integer(), nullable=False),
        sa.Column('swept_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('account', name=op.f('pk_stripe_event_cursor')),
    )


def downgrade() -> None:
    op.drop_table('stripe_event_cursor')
