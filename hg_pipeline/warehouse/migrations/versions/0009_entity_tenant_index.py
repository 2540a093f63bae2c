"""An index on tenant_id of every loaded entity table: a whole load reads the tenant's rows
(soft-deleted ones too, which the partial unique index of live rows leaves out), and scanned
every tenant's rows without it.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("companies", "contacts", "products", "members", "assets")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_tenant", table, ["tenant_id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_tenant", table_name=table)
