"""The map stage outside Dagster: staged records + the mapping in force -> MappingResult.

Also records every decision in `mapping_decisions`, which `mapping pending` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, select

from hg_pipeline.mapping.categories import CategoryTree
from hg_pipeline.mapping.document import parse_document
from hg_pipeline.mapping.engine import MappingContext, MappingResult, map_entity
from hg_pipeline.warehouse.bulk import copy_rows, qualified
from hg_pipeline.warehouse.load import tenant_category_rows
from hg_pipeline.warehouse.mappings import current_mapping
from hg_pipeline.warehouse.staging import quarantine_records, staged_records
from hg_pipeline.warehouse.tables import companies, mapping_decisions
from hg_pipeline.warehouse.tenants import get_tenant


@dataclass
class MappedEntity:
    result: MappingResult
    version: int  # the mapping version applied
    category_ids: set[str]  # every category id the tenant's tree holds
    quarantined: int  # records pointing at a company the PSA does not have


def run_mapping(engine: Engine, tenant_id: str, entity: str,
                upstream: MappingResult | None = None, *, run_id: str | None = None) -> MappedEntity:
    get_tenant(engine, tenant_id)
    stored = current_mapping(engine, tenant_id)
    if stored is None:
        raise ValueError(f"tenant {tenant_id} has no mapping yet: import one with "
                         f"`hg-pipeline mapping import {tenant_id} FILE`")
    document = parse_document(stored.document)
    staged = staged_records(engine, tenant_id, entity)
    new_ids = {s.psa_id for s in staged if _utc(s.first_seen_at) > stored.created_at}
    tree = _category_tree(engine, tenant_id)
    context = MappingContext(
        tenant_id=tenant_id,
        new_psa_ids={entity: new_ids},
        existing_companies=_existing_companies(engine, tenant_id),
        category_tree=tree,
    )
    categories = None
    if entity == "products":
        categories = [s.record for s in staged_records(engine, tenant_id, "product_categories")]
    result = map_entity(entity, [s.record for s in staged], document, context,
                        companies=upstream, categories=categories)
    _record_decisions(engine, tenant_id, entity, result, stored.version)
    orphans = [d for d in result.decisions if d.rule == "unknown_parent"]
    if orphans:
        payloads = {s.psa_id: s.record for s in staged}
        with engine.begin() as conn:
            quarantine_records(conn, tenant_id, entity,
                               [(d.psa_id, d.reason, payloads.get(d.psa_id)) for d in orphans],
                               run_id, datetime.now(timezone.utc))
    return MappedEntity(result, stored.version, {tree.id_of(path) for path in tree.paths()}, len(orphans))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _existing_companies(engine: Engine, tenant_id: str) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(companies.c.id, companies.c.name, companies.c.hg_type).where(
            companies.c.tenant_id == tenant_id, companies.c.deleted_at.is_(None))).all()
    return {row.id: {"name": row.name, "hg_type": row.hg_type} for row in rows}


def _category_tree(engine: Engine, tenant_id: str) -> CategoryTree:
    custom = [row["path"] for row in tenant_category_rows(engine, tenant_id) if row["tenant_id"] == tenant_id]
    return CategoryTree(custom_paths=custom, tenant_id=tenant_id)


def _record_decisions(engine: Engine, tenant_id: str, entity: str, result: MappingResult, version: int) -> None:
    """Store the decisions that changed since the last map stage (a remap usually changes few)."""
    now = datetime.now(timezone.utc)
    t = mapping_decisions
    scope = (t.c.tenant_id == tenant_id, t.c.entity == entity)
    with engine.begin() as conn:
        stored = {row.psa_id: tuple(row[1:]) for row in conn.execute(
            select(t.c.psa_id, t.c.outcome, t.c.rule, t.c.reason, t.c.group_key, t.c.mapping_version).where(*scope))}
        fresh = {d.psa_id: (d.outcome, d.rule, d.reason, d.group, version) for d in result.decisions}
        stale = [psa_id for psa_id, values in stored.items() if fresh.get(psa_id) != values]
        for start in range(0, len(stale), 5000):
            conn.execute(t.delete().where(*scope, t.c.psa_id.in_(stale[start:start + 5000])))
        columns = ("tenant_id", "entity", "psa_id", "outcome", "rule", "reason", "group_key", "mapping_version",
                   "decided_at")
        copy_rows(conn, qualified(conn, t), columns, (
            (tenant_id, entity, psa_id, *values, now)
            for psa_id, values in fresh.items() if stored.get(psa_id) != values
        ))


def mapping_targets(engine: Engine, tenant_id: str) -> tuple[set[str], set[str]]:
    """What a tenant's mapping may point at: HighGround company ids and category paths."""
    return set(_existing_companies(engine, tenant_id)), set(_category_tree(engine, tenant_id).paths())


def pending_summary(engine: Engine, tenant_id: str) -> dict[str, dict[str, int]]:
    """entity -> group (type or category) -> number of pending records, from the last map stage."""
    from sqlalchemy import func

    with engine.connect() as conn:
        rows = conn.execute(
            select(mapping_decisions.c.entity, mapping_decisions.c.group_key, func.count())
            .where(mapping_decisions.c.tenant_id == tenant_id, mapping_decisions.c.outcome == "pending")
            .group_by(mapping_decisions.c.entity, mapping_decisions.c.group_key)
            .order_by(mapping_decisions.c.entity)
        ).all()
    summary: dict[str, dict[str, int]] = {}
    for entity, group, count in rows:
        summary.setdefault(entity, {})[group or "(none)"] = count
    return summary
