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
from typing import NamedTuple
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, func, select, text, update

from hg_pipeline.entities import ENTITY_LOADS
from hg_pipeline.mapping.packed import blocks_of
from hg_pipeline.warehouse.map_marks import MapMark, store_mark
from hg_pipeline.warehouse.staging import promote_watermark
from hg_pipeline.warehouse.bulk import chunks, copy_rows, create_temp_twin, index_temp, plain_rows, qualified, temp_ref
from hg_pipeline.warehouse.tables import LOADED_TABLES, categories, product_distributions


class _Current(NamedTuple):
    """A row the tenant has in the table, as far as a load compares it."""

    id: str
    content_hash: str | None
    deleted_at: datetime | None
    origin: str
    psa_id: str | None


UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


class LoadError(RuntimeError):
    """A load refused to run; nothing was written."""


@dataclass
class LoadCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    soft_deleted: int = 0
    unlinked: int = 0
    rows: int = 0  # live rows of the entity after the load

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def content_hash(values: Sequence) -> str:
    return hashlib.md5(repr(tuple(values)).encode()).hexdigest()


def load_entity(
    engine: Engine,
    tenant_id: str,
    entity: str,
    rows: Sequence[dict],
    *,
    new_categories: list[dict] | None = None,
    distributions: list[dict] | None = None,
    max_delete_share: float | None = None,
    scope: list[str] | None = None,
    mark: MapMark | None = None,
) -> LoadCounts:
    """Merge `rows` (the full mapped set of `entity` for `tenant_id`: a list, or a map stage's
    Packed rows, read a block at a time) in one transaction.

    `scope` (a delta): `rows` is the mapped set of these PSA ids only; rows of other PSA
    records are left as they are. `mark`: how far the map read staging, stored in the same
    commit (the next delta starts from it).

    The tenant's current (id, content hash) pairs are read first and compared here, so only
    new and changed rows travel to the database (COPY into an indexed temp table, then one
    upsert) and a sync that changes nothing writes nothing. The first whole load of a table
    the tenant has no row in COPYs its rows straight in: there is nothing to merge with (about
    a third of the time of the assets' first load).
    `max_delete_share`: refuse (LoadError, nothing written) when the load would
    soft-delete more than this share of the tenant's live rows.
    """
    spec = ENTITY_LOADS[entity]
    table = LOADED_TABLES[entity]
    now = datetime.now(timezone.utc)
    temp = f"incoming_{table.name}"
    with engine.begin() as conn:
        # A delta reads the rows its records and incoming ids touch; a whole load every row.
        wanted = None if scope is None else [row["id"] for row in rows]
        current = _current_rows(conn, table, tenant_id, scope, wanted)
        counts, incoming, copied = LoadCounts(), set(), False
        straight_in = scope is None and not current
        # A block of rows at a time: memory holds the ids and one block, not the mapped set.
        for block in blocks_of(rows):
            changed = []
            for row in block:
                if row.get("tenant_id", tenant_id) != tenant_id:
                    raise LoadError(f"{entity} row {row.get('psa_id')} belongs to tenant {row['tenant_id']!r},"
                                    f" not {tenant_id!r}")
                values = tuple(row[c] for c in spec.columns)
                hg_id = values[0]
                if hg_id in incoming:
                    raise LoadError(f"{entity} id {hg_id} appears twice in the mapped set; nothing loaded")
                incoming.add(hg_id)
                digest = content_hash(values)
                known = current.get(hg_id)
                if known is None:
                    counts.inserted += 1
                elif known.content_hash != digest or known.deleted_at is not None:
                    counts.updated += 1
                else:
                    continue
                changed.append((tenant_id, *values, digest, now, now))
            if changed and straight_in:
                _copy_in(conn, table, tenant_id, spec.columns, changed)
            elif changed:
                if not copied:
                    create_temp_twin(conn, table, temp)
                copy_rows(conn, temp_ref(conn, temp), _incoming_columns(spec.columns), changed)
                copied = True
        counts.unchanged = len(incoming) - counts.inserted - counts.updated
        to_delete = [i for i, r in current.items() if i not in incoming and r.origin == "psa" and r.deleted_at is None]
        to_unlink = [i for i, r in current.items() if i not in incoming and r.origin != "psa" and r.psa_id is not None]
        live = sum(1 for r in current.values() if r.origin == "psa" and r.deleted_at is None) if scope is None \
            else live_row_count(conn, table, tenant_id, origin="psa")
        if max_delete_share is not None and live and len(to_delete) > max_delete_share * live:
            raise LoadError(f"{table.name}: would soft-delete {len(to_delete)} of {live} rows"
                            f" ({len(to_delete) / live:.0%} > {max_delete_share:.0%}); nothing loaded")
        if new_categories:
            _insert_categories(conn, tenant_id, new_categories)
        # Soft-delete and unlink first: a PSA record moving to another HighGround id must
        # leave its old row before the new one takes its (tenant_id, psa_id).
        counts.soft_deleted = _update_ids(conn, table, to_delete, deleted_at=now, updated_at=now)
        counts.unlinked = _update_ids(conn, table, to_unlink, psa_id=None, updated_at=now)
        if copied:
            _upsert(conn, table, tenant_id, spec.columns, temp)
        promote_watermark(conn, tenant_id, entity)  # the next incremental read starts from this extraction
        if mark is not None:
            store_mark(conn, tenant_id, entity, mark)
        # A whole load leaves exactly its rows live and linked; a delta touches a few of them.
        counts.rows = len(incoming) if scope is None else live_row_count(conn, table, tenant_id)
        if distributions is not None:
            _drop_distributions(conn, tenant_id, None if scope is None else list({*current, *incoming}))
            if distributions:
                conn.execute(product_distributions.insert(), [
                    {"tenant_id": tenant_id, "product_id": d["product_id"], "category_id": d["category_id"],
                     "pct": d["pct"]} for d in distributions
                ])
    return counts


def _current_rows(conn: Connection, table, tenant_id: str, scope: list[str] | None,
                  incoming: list[str]) -> dict[str, _Current]:
    """The tenant's rows a load compares with: all of them, or for a delta those of the PSA
    records in `scope` and those the incoming rows would take."""
    columns = (table.c.id, table.c.content_hash, table.c.deleted_at, table.c.origin, table.c.psa_id)
    query = select(*columns).where(table.c.tenant_id == tenant_id)
    if scope is None:
        return {row[0]: _Current(*row) for row in plain_rows(conn, query)}
    # Live rows by PSA id: the partial unique index (tenant_id, psa_id) of live rows serves it;
    # without `deleted_at IS NULL` every delta load scanned the whole table, every tenant's rows.
    # A soft-deleted row matters only when an incoming row takes its id again (found by id).
    by_psa_id = query.where(table.c.deleted_at.is_(None))
    current = {}
    for select_by, column, values in ((by_psa_id, table.c.psa_id, scope), (query, table.c.id, incoming)):
        for ids in chunks(values):
            for row in plain_rows(conn, select_by.where(column.in_(ids))):
                current[row[0]] = _Current(*row)
    return current


def live_row_count(conn: Connection, table, tenant_id: str, *, origin: str | None = None) -> int:
    """The tenant's live rows linked to a PSA record (what a whole load states), or of one
    `origin` ("psa": the rows a sync created, which it may soft-delete)."""
    where = table.c.psa_id.is_not(None) if origin is None else table.c.origin == origin
    return conn.scalar(select(func.count()).select_from(table).where(
        table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None), where))


def _drop_distributions(conn: Connection, tenant_id: str, product_ids: list[str] | None) -> None:
    """The tenant's product distributions, or those of `product_ids` (a delta's products)."""
    t = product_distributions
    if product_ids is None:
        conn.execute(t.delete().where(t.c.tenant_id == tenant_id))
        return
    for ids in chunks(product_ids):
        conn.execute(t.delete().where(t.c.tenant_id == tenant_id, t.c.product_id.in_(ids)))


def _update_ids(conn: Connection, table, ids: list[str], **values) -> int:
    done = 0
    for batch in chunks(ids):
        done += conn.execute(update(table).where(table.c.id.in_(batch)).values(**values)).rowcount
    return done


def _incoming_columns(mapped: Sequence[str]) -> tuple[str, ...]:
    return ("tenant_id",) + tuple(mapped) + ("content_hash", "created_at", "updated_at")


def _copy_in(conn: Connection, table, tenant_id: str, mapped: Sequence[str], rows: list[tuple]) -> None:
    """New rows straight into `table` (a first load). An id taken by another tenant's row
    breaks the table's key: refused as `_upsert` refuses it, and nothing is written."""
    try:
        copy_rows(conn, qualified(conn, table), (*_incoming_columns(mapped), "origin"),
                  (row + ("psa",) for row in rows))
    except conn.dialect.dbapi.IntegrityError as exc:  # the driver's own: copy_rows writes through it
        if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION and "UNIQUE constraint failed" not in str(exc):
            raise
        # PostgreSQL's detail names the key ("Key (id)=(...) already exists."); SQLite's message the column.
        detail = getattr(getattr(exc, "diag", None), "message_detail", None) or str(exc).strip().splitlines()[0]
        raise LoadError(f"{table.name}: an incoming id belongs to another tenant ({detail});"
                        f" refusing to load {tenant_id}") from None


def _upsert(conn: Connection, table, tenant_id: str, mapped: Sequence[str], temp: str) -> None:
    """Merge what the load copied into `temp` (the changed rows) into `table`."""
    index_temp(conn, temp, ("id",))
    target, tmp = qualified(conn, table), temp_ref(conn, temp)
    foreign = conn.execute(text(
        f"SELECT i.id FROM {tmp} i JOIN {target} t ON t.id = i.id WHERE t.tenant_id <> :tenant"
    ), {"tenant": tenant_id}).scalars().first()
    if foreign is not None:
        raise LoadError(f"{table.name} id {foreign} belongs to another tenant; refusing to load {tenant_id}")
    listed = ", ".join(("id", "tenant_id", *(c for c in mapped if c != "id"), "content_hash", "created_at",
                        "updated_at"))
    assignments = ", ".join(f"{c} = excluded.{c}" for c in mapped if c != "id")
    conn.execute(text(
        f"INSERT INTO {target} ({listed}, origin) SELECT {listed}, 'psa' FROM {tmp} WHERE true"
        f" ON CONFLICT (id) DO UPDATE SET {assignments}, content_hash = excluded.content_hash,"
        f" updated_at = excluded.updated_at, deleted_at = NULL"
    ))


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
