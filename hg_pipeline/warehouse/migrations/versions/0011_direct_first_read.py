"""An entity's first read writes its pages straight into `raw_records` (issue 10).

`extract_progress.direct` marks such a read while it is under way: its records are in staging
already, and every reader of staging leaves them out until the read is merged, which then only
ends the progress (the second copy from `raw_inflight` was about a tenth of a first full sync).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("extract_progress") as batch:
        batch.add_column(sa.Column("direct", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("extract_progress") as batch:
        batch.drop_column("direct")
