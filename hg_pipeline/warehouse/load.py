"""Loading mapped records into the entity tables: one transaction per entity and tenant.

A load states the whole mapped set of an entity for a tenant. Rows are merged on
their HighGround id (derived from tenant and PSA id, or the target of a `map` rule):
new ones are inserted, changed ones updated (an unchanged row is not rewritten, so
a second sync changes nothing), and rows that a sync created but that are no longer
in the set are soft-deleted. A HighGround record linked by a `map` rule that no
longer applies is unlinked (psa_id cleared), never deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, func, select, text

from hg_pipeline.entities import ENTITY_LOADS
from hg_pipeline.warehouse.bulk import copy_rows, create_temp_twin, distinct_from, qualified, temp_ref
from hg_pipeline.warehouse.tables import LOADED_TABLES, categories, product_distributions


class LoadError(RuntimeError):
    """A load refused to run; nothing was written."""


@dataclass
class LoadCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    soft_deleted: int = 0
    unlinked: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def content_hash(values: Sequence) -> str:
    return hashlib.md5(repr(tuple(values)).encode()).hexdigest()


def load_entity(
    engine: Engine,
    tenant_id: str,
    entity: str,
    rows: list[dict],
    *,
    new_categories: list[dict] | None = None,
    distributions: list[dict] | None = None,
    max_delete_share: float | None = None,
) -> LoadCounts:
    """Merge `rows` (the full mapped set of `entity` for `tenant_id`) in one transaction.

    `max_delete_share`: refuse (LoadError, nothing written) when the load would
    soft-delete more than this share of the tenant's live rows.
    """
    spec = ENTITY_LOADS[entity]
    table = LOADED_TABLES[entity]
    now = datetime.now(timezone.utc)
    for row in rows:
        if row.get("tenant_id", tenant_id) != tenant_id:
            raise LoadError(f"{entity} row {row.get('psa_id')} belongs to tenant {row['tenant_id']!r}, not {tenant_id!r}")
    columns = ("tenant_id",) + spec.columns + ("content_hash", "created_at", "updated_at")
    temp = f"incoming_{entity}"
    with engine.begin() as conn:
        if new_categories:
            _insert_categories(conn, tenant_id, new_categories)
        create_temp_twin(conn, table, temp)
        copy_rows(conn, temp_ref(conn, temp), columns, (
            (tenant_id, *values, content_hash(values), now, now)
            for values in (tuple(row[c] for c in spec.columns) for row in rows)
        ))
        counts = _merge(conn, table, temp, tenant_id, spec.columns, now, max_delete_share)
        if distributions is not None:
            conn.execute(product_distributions.delete().where(product_distributions.c.tenant_id == tenant_id))
            if distributions:
                conn.execute(product_distributions.insert(), [
                    {"tenant_id": tenant_id, "product_id": d["product_id"], "category_id": d["category_id"],
                     "pct": d["pct"]} for d in distributions
                ])
    counts.unchanged = len(rows) - counts.inserted - counts.updated
    return counts


def _merge(conn: Connection, table, temp: str, tenant_id: str, mapped: Sequence[str], now: datetime,
           max_delete_share: float | None) -> LoadCounts:
    target, tmp, ne = qualified(conn, table), temp_ref(conn, temp), distinct_from(conn)
    foreign = conn.execute(text(
        f"SELECT i.id FROM {tmp} i JOIN {target} t ON t.id = i.id WHERE t.tenant_id <> :tenant"
    ), {"tenant": tenant_id}).scalars().first()
    if foreign is not None:
        raise LoadError(f"{table.name} id {foreign} belongs to another tenant; refusing to load {tenant_id}")
    inserted, updated = conn.execute(text(
        f"SELECT COALESCE(SUM(CASE WHEN t.id IS NULL THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN t.id IS NOT NULL AND (t.content_hash {ne} i.content_hash"
        f"   OR t.deleted_at IS NOT NULL) THEN 1 ELSE 0 END), 0)"
        f" FROM {tmp} i LEFT JOIN {target} t ON t.id = i.id"
    )).one()
    absent = f"NOT EXISTS (SELECT 1 FROM {tmp} i WHERE i.id = {target}.id)"
    if max_delete_share is not None:
        live = conn.scalar(select(func.count()).select_from(table).where(
            table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None), table.c.origin == "psa"))
        going = conn.execute(text(
            f"SELECT COUNT(*) FROM {target} WHERE tenant_id = :tenant AND deleted_at IS NULL"
            f" AND origin = 'psa' AND {absent}"), {"tenant": tenant_id}).scalar()
        if live and going > max_delete_share * live:
            raise LoadError(f"{table.name}: would soft-delete {going} of {live} rows"
                            f" ({going / live:.0%} > {max_delete_share:.0%}); nothing loaded")
    soft_deleted = conn.execute(text(
        f"UPDATE {target} SET deleted_at = :now, updated_at = :now WHERE tenant_id = :tenant"
        f" AND deleted_at IS NULL AND origin = 'psa' AND {absent}"
    ), {"now": now, "tenant": tenant_id}).rowcount
    unlinked = conn.execute(text(
        f"UPDATE {target} SET psa_id = NULL, updated_at = :now WHERE tenant_id = :tenant"
        f" AND origin = 'highground' AND psa_id IS NOT NULL AND {absent}"
    ), {"now": now, "tenant": tenant_id}).rowcount
    all_columns = ("id", "tenant_id") + tuple(c for c in mapped if c != "id") + (
        "content_hash", "created_at", "updated_at")
    listed = ", ".join(all_columns)
    assignments = ", ".join(f"{c} = excluded.{c}" for c in mapped if c != "id")
    conn.execute(text(
        f"INSERT INTO {target} ({listed}, origin) SELECT {listed}, 'psa' FROM {tmp} WHERE true"
        f" ON CONFLICT (id) DO UPDATE SET {assignments}, content_hash = excluded.content_hash,"
        f" updated_at = excluded.updated_at, deleted_at = NULL"
        f" WHERE {target}.content_hash {ne} excluded.content_hash OR {target}.deleted_at IS NOT NULL"
    ))
    return LoadCounts(inserted=int(inserted), updated=int(updated), soft_deleted=soft_deleted, unlinked=unlinked)


def _insert_categories(conn: Connection, tenant_id: str, rows: list[dict]) -> None:
    """Create the tenant's custom categories that do not exist yet (parents first)."""
    existing = set(conn.scalars(select(categories.c.id).where(
        categories.c.id.in_([row["id"] for row in rows]))))
    fresh = sorted((row for row in rows if row["id"] not in existing), key=lambda row: row["path"].count("/"))
    if fresh:
        conn.execute(categories.insert(), [
            {"id": row["id"], "tenant_id": tenant_id, "name": row["name"], "parent_id": row["parent_id"],
             "path": row["path"], "custom": True} for row in fresh
        ])


def live_counts(engine: Engine, tenant_id: str) -> dict[str, int]:
    """Live (not soft-deleted) rows per loaded entity for one tenant."""
    out = {}
    with engine.connect() as conn:
        for entity, table in LOADED_TABLES.items():
            out[entity] = conn.scalar(select(func.count()).select_from(table).where(
                table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None)))
    return out


def tenant_category_rows(engine: Engine, tenant_id: str) -> list[dict]:
    """Global categories plus the tenant's custom ones."""
    with engine.connect() as conn:
        rows = conn.execute(select(categories).where(
            (categories.c.tenant_id.is_(None)) | (categories.c.tenant_id == tenant_id))).mappings().all()
    return [dict(row) for row in rows]
