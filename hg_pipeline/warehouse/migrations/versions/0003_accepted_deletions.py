"""What the operator accepted to soft-delete by mapping when storing a version with --force.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mapping_versions") as batch:
        batch.add_column(sa.Column("accepted_deletions", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("mapping_versions") as batch:
        batch.drop_column("accepted_deletions")
