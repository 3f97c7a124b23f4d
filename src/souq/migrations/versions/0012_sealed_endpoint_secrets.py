"""webhook endpoint secrets sealed at rest

The signing secrets of webhook endpoints are stored sealed (Fernet, under a key derived from
SECRET_KEY) instead of in clear: the columns are renamed `secret_sealed` and
`previous_secret_sealed`, widened, and every existing secret is sealed in place. The key is
the one the application uses: SECRET_KEY from the environment (outside production, the data
folder's generated one when it is unset), or `secret_key` in Alembic's config attributes.

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-29 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

endpoint = sa.table(
    "webhook_endpoint",
    sa.column("id", sa.Integer),
    sa.column("secret_sealed", sa.String),
    sa.column("previous_secret_sealed", sa.String),
)


def _fernet():
    from souq.config import get_settings
    from souq.integrations.sealing import sealer

    key = context.config.attributes.get("secret_key")
    if key is None:
        key = get_settings().with_local_secrets().secret_key.get_secret_value()
    return sealer(key)


def _convert(change) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(endpoint.c.id, endpoint.c.secret_sealed, endpoint.c.previous_secret_sealed)
    ).all()
    if not rows:
        return
    fernet = _fernet()
    for row in rows:
        connection.execute(
            endpoint.update()
            .where(endpoint.c.id == row.id)
            .values(
                secret_sealed=change(fernet, row.secret_sealed),
                previous_secret_sealed=(
                    change(fernet, row.previous_secret_sealed)
                    if row.previous_secret_sealed
                    else None
                ),
            )
        )


def _rename(names: dict[str, str], length: int, new_length: int) -> None:
    with op.batch_alter_table("webhook_endpoint", schema=None) as batch_op:
        for old, new in names.items():
            batch_op.alter_column(
                old,
                new_column_name=new,
                existing_type=sa.String(length=length),
                type_=sa.String(length=new_length),
                existing_nullable=old.startswith("previous"),
            )


def upgrade() -> None:
    _rename({"secret": "secret_sealed", "previous_secret": "previous_secret_sealed"}, 100, 400)
    _convert(lambda fernet, plain: fernet.encrypt(plain.encode()).decode())


def downgrade() -> None:
    _convert(lambda fernet, sealed: fernet.decrypt(sealed.encode()).decode())
    _rename({"secret_sealed": "secret", "previous_secret_sealed": "previous_secret"}, 400, 100)
