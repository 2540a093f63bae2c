"""Alembic environment: runs on the connection handed over by `warehouse.schema.upgrade`."""

from alembic import context

from hg_pipeline.warehouse.db import SCHEMA
from hg_pipeline.warehouse.tables import metadata

connection = context.config.attributes["connection"]
postgres = connection.dialect.name == "postgresql"
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=SCHEMA if postgres else None,
    render_as_batch=not postgres,
)
with context.begin_transaction():
    context.run_migrations()
