"""Initial warehouse: every table of the product contract.

Revision ID: 0001
"""

from alembic import op

from hg_pipeline.warehouse.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The first revision creates the declared tables; every later revision must use
    # explicit op.* calls so that it replays identically on old databases.
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
