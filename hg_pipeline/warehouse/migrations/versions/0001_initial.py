"""Initial warehouse: every table of the product contract.

Revision ID: 0001

Explicit DDL, frozen: the schema as it stood when this revision was written, whatever
tables.py says later. On PostgreSQL the unqualified names land in schema `hg` (see env.py).
Databases created by the earlier `metadata.create_all` version of this revision have
exactly this schema and are already stamped 0001.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Creation order, parents first; the downgrade drops in reverse.
TABLES = (
    "tenants", "mapping_versions", "raw_records", "extract_cursors", "mapping_decisions", "categories",
    "companies", "contacts", "products", "product_distributions", "members", "assets",
    "spend", "quarantine", "sync_runs",
)


def _id(**kwargs) -> sa.Column:
    return sa.Column("id", sa.String(64), primary_key=True, **kwargs)


def _tenant_fk(**kwargs) -> sa.Column:
    return sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.tenant_id"), **kwargs)


def _serial() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _entity_table(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        _id(),
        _tenant_fk(nullable=False),
        sa.Column("psa_id", sa.String(64)),
        *columns,
        sa.Column("origin", sa.String(16), nullable=False, server_default="psa"),
        sa.Column("content_hash", sa.String(32)),
        _at("created_at"),
        _at("updated_at"),
        _at("deleted_at", nullable=True),
    )
    op.create_index(
        f"uq_{name}_tenant_psa_live",
        name,
        ["tenant_id", "psa_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("base_url", sa.String(500)),
        sa.Column("credentials", sa.Text, nullable=False, server_default="{}"),
        sa.Column("notify_email", sa.String(320)),
        _at("created_at"),
    )
    op.create_table(
        "mapping_versions",
        _tenant_fk(primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
        _at("created_at"),
    )
    op.create_table(
        "raw_records",
        _tenant_fk(primary_key=True),
        sa.Column("entity", sa.String(40), primary_key=True),
        sa.Column("psa_id", sa.String(64), primary_key=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        _at("first_seen_at"),
        _at("last_seen_at"),
        sa.Column("seen_run_id", sa.String(64)),
        _at("vanished_at", nullable=True),
    )
    op.create_table(
        "extract_cursors",
        _tenant_fk(primary_key=True),
        sa.Column("entity", sa.String(40), primary_key=True),
        _at("extracted_at"),
    )
    op.create_table(
        "mapping_decisions",
        _tenant_fk(primary_key=True),
        sa.Column("entity", sa.String(40), primary_key=True),
        sa.Column("psa_id", sa.String(64), primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("group_key", sa.String(300)),
        sa.Column("mapping_version", sa.Integer),
        _at("decided_at"),
    )
    op.create_table(
        "categories",
        _id(),
        _tenant_fk(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.String(64), sa.ForeignKey("categories.id")),
        sa.Column("path", sa.String(401), nullable=False),
        sa.Column("custom", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )
    _entity_table(
        "companies",
        sa.Column("name", sa.String(300)),
        sa.Column("psa_name", sa.String(300)),
        sa.Column("hg_type", sa.String(20)),
        sa.Column("psa_type", sa.String(200)),
    )
    _entity_table(
        "contacts",
        sa.Column("company_id", sa.String(64)),
        sa.Column("first_name", sa.String(200)),
        sa.Column("last_name", sa.String(200)),
        sa.Column("email", sa.String(320)),
        sa.Column("contact_type", sa.String(200)),
        sa.Column("invite_status", sa.String(20), nullable=False, server_default="not_invited"),
    )
    _entity_table(
        "products",
        sa.Column("sku", sa.String(200)),
        sa.Column("name", sa.String(500)),
        sa.Column("category_id", sa.String(64)),
        sa.Column("mapping_source", sa.String(20)),
        sa.Column("price", sa.Float),
        sa.Column("cost", sa.Float),
    )
    op.create_table(
        "product_distributions",
        _tenant_fk(nullable=False),
        sa.Column("product_id", sa.String(64), primary_key=True),
        sa.Column("category_id", sa.String(64), primary_key=True),
        sa.Column("pct", sa.Float, nullable=False),
    )
    _entity_table(
        "members",
        sa.Column("name", sa.String(300)),
        sa.Column("email", sa.String(320)),
        sa.Column("invite_status", sa.String(20), nullable=False, server_default="not_invited"),
    )
    _entity_table(
        "assets",
        sa.Column("company_id", sa.String(64)),
        sa.Column("name", sa.String(300)),
        sa.Column("asset_type", sa.String(200)),
        sa.Column("serial_number", sa.String(200)),
    )
    op.create_table(
        "spend",
        _serial(),
        _tenant_fk(nullable=False),
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("category_id", sa.String(64)),
        sa.Column("product_id", sa.String(64)),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
    )
    op.create_table(
        "quarantine",
        _serial(),
        _tenant_fk(nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("psa_id", sa.String(64)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text),
        sa.Column("sync_run_id", sa.String(64)),
        _at("created_at"),
    )
    op.create_table(
        "sync_runs",
        _serial(),
        _tenant_fk(nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _at("started_at"),
        _at("finished_at", nullable=True),
        sa.Column("dagster_run_id", sa.String(64), unique=True),
        sa.Column("summary", sa.Text),
        sa.Column("error", sa.Text),
    )


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
