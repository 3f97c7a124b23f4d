"""security: server-side sessions, one throttle table (logins and checkouts), store
invitations, API token expiry, the client address of an order

Revision ID: 0003
Revises: 0004
Create Date: 2026-11-29 05:38:51.359656
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('throttle',
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_throttle'))
    )
    op.create_table('store_invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.Enum('owner', 'admin', 'seller', name='store_role', native_enum=False, length=20), nullable=False),
    sa.Column('invited_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invited_by_user_id'], ['user.id'], name=op.f('fk_store_invitation_invited_by_user_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['store_id'], ['store.id'], name=op.f('fk_store_invitation_store_id_store'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_store_invitation')),
    sa.UniqueConstraint('store_id', 'email', name='uq_store_invitation_store_email')
    )
    with op.batch_alter_table('store_invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_store_invitation_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_store_invitation_store_id'), ['store_id'], unique=False)

    op.create_table('user_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_user_session_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_session')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_user_session_key_hash'))
    )
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_session_user_id'), ['user_id'], unique=False)

    op.drop_table('login_throttle')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_address', sa.String(length=64), nullable=True))




def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('client_address')

    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('expires_at')

    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle'))
    )
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_session_user_id'))

    op.drop_table('user_session')
    with op.batch_alter_table('store_invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_store_invitation_store_id'))
        batch_op.drop_index(batch_op.f('ix_store_invitation_email'))

    op.drop_table('store_invitation')
    op.drop_table('throttle')

