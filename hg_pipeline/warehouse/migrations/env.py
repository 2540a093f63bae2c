"""Alembic environment: runs on the connection handed over by `warehouse.schema.upgrade`."""

from alembic import context
from sqlalchemy import text

from hg_pipeline.warehouse.db import SCHEMA
from hg_pipeline.warehouse.tables import metadata

connection = context.config.attributes["connection"]
postgres = connection.dialect.name == "postgresql"
if postgres:
    # The engine's schema_translate_map places CREATE TABLE/INDEX in `hg`, but Alembic's
    # ALTER statements (and any op.execute) name tables unqualified: resolve them in `hg`
    # too, for this transaction only.
    connection.execute(text(f"SET LOCAL search_path TO {SCHEMA}"))
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=SCHEMA if postgres else None,
    render_as_batch=not postgres,
)
with context.begin_transaction():
    context.run_migrations()
