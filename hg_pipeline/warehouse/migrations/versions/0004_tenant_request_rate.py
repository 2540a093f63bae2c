"""The request rate a tenant's PSA instance allows, when the operator sets one.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("requests_per_second", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("requests_per_second")
