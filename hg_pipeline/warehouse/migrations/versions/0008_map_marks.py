"""map_marks: how far each entity's mapping has read staging, for the nightly's delta map.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "map_marks",
        sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.tenant_id"), primary_key=True),
        sa.Column("entity", sa.String(40), primary_key=True),
        sa.Column("mapping_version", sa.Integer),
        sa.Column("staged_through", sa.DateTime(timezone=True)),
        sa.Column("upstream_key", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("map_marks")
