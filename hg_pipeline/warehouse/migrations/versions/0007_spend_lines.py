"""Spend derived from spend lines: the line each row comes from, an index per tenant and month,
and `spend_unmapped`, the lines no category takes (with their reason).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spend") as batch:
        batch.add_column(sa.Column("line_psa_id", sa.String(64)))
    op.create_index("ix_spend_tenant_month", "spend", ["tenant_id", "month"])
    op.create_table(
        "spend_unmapped",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("line_psa_id", sa.String(64), nullable=False),
        sa.Column("company_psa_id", sa.String(64)),
        sa.Column("company_id", sa.String(64)),
        sa.Column("product_psa_id", sa.String(64)),
        sa.Column("category", sa.String(401)),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_spend_unmapped_tenant", "spend_unmapped", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_spend_unmapped_tenant", "spend_unmapped")
    op.drop_table("spend_unmapped")
    op.drop_index("ix_spend_tenant_month", "spend")
    with op.batch_alter_table("spend") as batch:
        batch.drop_column("line_psa_id")
