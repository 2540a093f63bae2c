"""`raw_records` and `mapping_decisions` lose their foreign keys to `tenants` (issue 10).

PostgreSQL checks a foreign key with a locking lookup per inserted row, about 2.6
microseconds: 0.55 s of a first full sync of the large dataset for staging's 210,000 records
and 0.45 s for the decisions of its map stages, on the path the sync waits on (measured with
`EXPLAIN ANALYZE`: 100,000 staged assets insert in 0.51 s, plus 0.26 s of the key's trigger).

What the keys guarded holds by construction. Staging is written only by an extraction, in the
transaction that also writes its `extract_progress` row (each page, and the merge that ends
it), whose key to `tenants` stays; decisions only by a map stage of a run that holds the
tenant's lock and its `sync_runs` row (key kept). No command deletes a tenant. The tables the
platform reads (companies, contacts, products, members, assets, spend) keep their keys.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("raw_records", "mapping_decisions")
# SQLite's foreign keys have no names: batch mode names them by this convention to drop one.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    for table in TABLES:
        if op.get_bind().dialect.name == "postgresql":
            for foreign_key in sa.inspect(op.get_bind()).get_foreign_keys(table):
                op.drop_constraint(foreign_key["name"], table, type_="foreignkey")
        else:
            with op.batch_alter_table(table, naming_convention=NAMING) as batch:
                batch.drop_constraint(f"fk_{table}_tenant_id", type_="foreignkey")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.create_foreign_key(f"fk_{table}_tenant_id", "tenants", ["tenant_id"], ["tenant_id"])
