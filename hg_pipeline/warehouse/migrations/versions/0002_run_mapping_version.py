"""The mapping version a sync run applied; a comment on each mapping version.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("mapping_version", sa.Integer))
    with op.batch_alter_table("mapping_versions") as batch:
        batch.add_column(sa.Column("comment", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("mapping_versions") as batch:
        batch.drop_column("comment")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("mapping_version")
