"""Warehouse tables (product contract section 4).

Tables are declared without a schema; on PostgreSQL they live in schema `hg`
(see `db.connect`), on SQLite in the main database.

Loaded entity tables share one shape: `id` (HighGround id, primary key),
`tenant_id`, `psa_id`, the mapped columns, and bookkeeping: `origin` ("psa" for rows
a sync created, "highground" for records that existed in HighGround and were
linked by a `map` rule), `content_hash` (so an unchanged row is not rewritten),
`created_at`, `updated_at`, `deleted_at` (soft delete).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()

ID = String(64)
TENANT = String(63)


def _timestamps() -> list[Column]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("deleted_at", DateTime(timezone=True)),
    ]


def _entity_table(name: str, *columns: Column) -> Table:
    table = Table(
        name,
        metadata,
        Column("id", ID, primary_key=True),
        Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), nullable=False),
        Column("psa_id", String(64)),
        *columns,
        Column("origin", String(16), nullable=False, server_default="psa"),
        Column("content_hash", String(32)),
        *_timestamps(),
    )
    # (tenant_id, psa_id) is unique among live rows: a PSA record that moved from an
    # imported row to an existing HighGround record leaves a soft-deleted twin.
    Index(
        f"uq_{name}_tenant_psa_live",
        table.c.tenant_id,
        table.c.psa_id,
        unique=True,
        postgresql_where=text("deleted_at IS NULL"),
        sqlite_where=text("deleted_at IS NULL"),
    )
    # A whole load reads the tenant's rows, soft-deleted ones too: without this, every tenant's.
    Index(f"ix_{name}_tenant", table.c.tenant_id)
    return table


tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", TENANT, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("source", String(20), nullable=False),
    Column("base_url", String(500)),
    # JSON object of secret *references* ("env:NAME"), never secret values.
    Column("credentials", Text, nullable=False, server_default="{}"),
    Column("notify_email", String(320)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Requests per second the tenant's PSA instance allows (null: the source's default).
    Column("requests_per_second", Float),
)

mapping_versions = Table(
    "mapping_versions",
    metadata,
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("comment", String(200)),  # why this version exists: "rollback to version 2", "forced: ..."
    # JSON {entity: rows}: what the operator accepted to soft-delete by mapping (import --force)
    Column("accepted_deletions", Text),
)

# Staging: every PSA record as the PSA returned it (`payload`) and normalized
# (`record`), so mapping and remaps never call the PSA.
# No foreign key to tenants (migration 0012, see there); nor has mapping_decisions.
raw_records = Table(
    "raw_records",
    metadata,
    Column("tenant_id", TENANT, primary_key=True),
    Column("entity", String(40), primary_key=True),
    Column("psa_id", String(64), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("record", Text, nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    # When and by which run the payload was last written (new, changed or back from vanished):
    # an unchanged record is not rewritten.
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("seen_run_id", String(64)),
    Column("vanished_at", DateTime(timezone=True)),
)
# A nightly asks staging for its latest change and what changed since a moment (migration 0010).
Index("ix_raw_records_last_seen", raw_records.c.tenant_id, raw_records.c.entity, raw_records.c.last_seen_at)
Index("ix_raw_records_vanished", raw_records.c.tenant_id, raw_records.c.entity, raw_records.c.vanished_at,
      postgresql_where=text("vanished_at IS NOT NULL"), sqlite_where=text("vanished_at IS NOT NULL"))

# Where each entity's extraction got to, for incremental resyncs (the watermark).
# `extracted_at` advances only when what the extraction staged is loaded: the extraction
# stores when it started as `pending_at`, the load's transaction moves it to `extracted_at`.
extract_cursors = Table(
    "extract_cursors",
    metadata,
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("entity", String(40), primary_key=True),
    Column("extracted_at", DateTime(timezone=True)),  # null: nothing loaded yet
    Column("pending_at", DateTime(timezone=True)),
)

# How far the mapping of each loaded entity has read staging (written by the load's commit):
# the nightly maps only the records staged or vanished after `staged_through`, when the
# mapping version and the company decisions it depends on (`upstream_key`) are the same.
map_marks = Table(
    "map_marks",
    metadata,
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("entity", String(40), primary_key=True),
    Column("mapping_version", Integer),
    Column("staged_through", DateTime(timezone=True)),
    Column("upstream_key", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# An extraction under way (or interrupted): the pages it committed sit in `raw_inflight`,
# where no map stage reads them, until the read is complete and merged into `raw_records`;
# those of an entity's first read (`direct`, migration 0011) sit in `raw_records` already,
# left out by every reader of staging until the read is merged.
# `resume_token` is the connector's word for "continue after the last committed page".
extract_progress = Table(
    "extract_progress",
    metadata,
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("entity", String(40), primary_key=True),
    Column("since", DateTime(timezone=True)),  # null: a full read
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("resume_token", Text),
    Column("pages", Integer, nullable=False),
    Column("records", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("direct", Boolean, nullable=False, server_default=false()),
)

# UNLOGGED on PostgreSQL (migration 0005), and without a foreign key to tenants (0010): see there.
raw_inflight = Table(
    "raw_inflight",
    metadata,
    Column("tenant_id", TENANT, primary_key=True),
    Column("entity", String(40), primary_key=True),
    Column("psa_id", String(64), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("record", Text, nullable=False),
)

# What the last map stage decided for every record: feeds `mapping pending`.
mapping_decisions = Table(
    "mapping_decisions",
    metadata,
    Column("tenant_id", TENANT, primary_key=True),
    Column("entity", String(40), primary_key=True),
    Column("psa_id", String(64), primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("rule", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("group_key", String(300)),
    Column("mapping_version", Integer),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)

categories = Table(
    "categories",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id")),  # null: HighGround's global tree
    Column("name", String(200), nullable=False),
    Column("parent_id", ID, ForeignKey("categories.id")),
    Column("path", String(401), nullable=False),
    Column("custom", Boolean, nullable=False, server_default=text("false")),
)

companies = _entity_table(
    "companies",
    Column("name", String(300)),
    Column("psa_name", String(300)),
    Column("hg_type", String(20)),
    Column("psa_type", String(200)),
)

contacts = _entity_table(
    "contacts",
    Column("company_id", ID),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("email", String(320)),
    Column("contact_type", String(200)),
    Column("invite_status", String(20), nullable=False, server_default="not_invited"),
)

products = _entity_table(
    "products",
    Column("sku", String(200)),
    Column("name", String(500)),
    Column("category_id", ID),
    Column("mapping_source", String(20)),
    Column("price", Float),
    Column("cost", Float),
)

product_distributions = Table(
    "product_distributions",
    metadata,
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), nullable=False),
    Column("product_id", ID, primary_key=True),
    Column("category_id", ID, primary_key=True),
    Column("pct", Float, nullable=False),
)

members = _entity_table(
    "members",
    Column("name", String(300)),
    Column("email", String(320)),
    Column("invite_status", String(20), nullable=False, server_default="not_invited"),
)

assets = _entity_table(
    "assets",
    Column("company_id", ID),
    Column("name", String(300)),
    Column("asset_type", String(200)),
    Column("serial_number", String(200)),
)

spend = Table(
    "spend",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), nullable=False),
    Column("company_id", ID, nullable=False),
    Column("category_id", ID),
    Column("product_id", ID),
    Column("month", String(7), nullable=False),  # YYYY-MM
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("line_psa_id", String(64)),  # the staged spend line it comes from (a distributed line gives several rows)
)
Index("ix_spend_tenant_month", spend.c.tenant_id, spend.c.month)

# Spend lines that no category takes (migration 0007): a pending or ignored product, a company
# that is not loaded, a product or category the tenant does not have. Kept with the reason;
# a remap that decides them moves them into `spend`.
spend_unmapped = Table(
    "spend_unmapped",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), nullable=False),
    Column("line_psa_id", String(64), nullable=False),
    Column("company_psa_id", String(64)),
    Column("company_id", ID),
    Column("product_psa_id", String(64)),
    Column("category", String(401)),  # an import line's category path, as given
    Column("month", String(7), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("outcome", String(20), nullable=False),  # pending | ignored | unknown_company | unknown_product | ...
    Column("reason", Text, nullable=False),
)
Index("ix_spend_unmapped_tenant", spend_unmapped.c.tenant_id)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("psa_id", String(64)),
    Column("reason", Text, nullable=False),
    Column("payload", Text),
    Column("sync_run_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), nullable=False),
    Column("kind", String(16), nullable=False),  # initial | full | remap | nightly
    Column("status", String(16), nullable=False),  # running | success | failure | canceled
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("dagster_run_id", String(64), unique=True),
    Column("summary", Text),  # JSON: counts per entity
    Column("error", Text),
    Column("mapping_version", Integer),  # the mapping version a successful full/remap/nightly run applied
)

# The import source (`hg_pipeline/imports/`): a batch of pushed records. Files are staged in
# one go; an API batch collects its POSTs in `import_records` until it is committed.
import_batches = Table(
    "import_batches",
    metadata,
    Column("batch_id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), nullable=False),
    Column("origin", String(16), nullable=False),  # files | api
    Column("status", String(16), nullable=False),  # open | staging | committed | failed
    Column("partial", Boolean, nullable=False),  # upsert only: nothing missing is soft-deleted
    Column("counts", Text),  # JSON: records staged per entity
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("committed_at", DateTime(timezone=True)),
)

import_records = Table(
    "import_records",
    metadata,
    Column("batch_id", Integer, ForeignKey("import_batches.batch_id"), primary_key=True),
    Column("entity", String(40), primary_key=True),
    Column("psa_id", String(64), primary_key=True),
    Column("payload", Text, nullable=False),
)

# An API request with an Idempotency-Key, and the answer it got: a retry gets the same answer.
import_requests = Table(
    "import_requests",
    metadata,
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("idempotency_key", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # method, path and body digest
    Column("status_code", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Bearer tokens of the import API: the secret is kept as its SHA-256 only.
import_tokens = Table(
    "import_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("tenant_id", TENANT, ForeignKey("tenants.tenant_id"), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

LOADED_TABLES = {
    "companies": companies,
    "contacts": contacts,
    "products": products,
    "members": members,
    "assets": assets,
}
