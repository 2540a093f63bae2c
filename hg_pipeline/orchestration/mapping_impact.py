"""What a candidate mapping version would do to a tenant's loaded rows, before it is stored.

`mapping import` and `mapping rollback` run the pure engine over the tenant's staged
records with the candidate document, entity by entity as the map stage does, and count the
live rows a sync created (`origin = psa`, not deleted) whose PSA record the candidate would
no longer load (ignored or pending). Those rows would be soft-deleted by the remap that the
new version triggers; more than the soft-delete share of an entity is refused unless forced.
Nothing is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from hg_pipeline.entities import LOADED_ENTITIES
from hg_pipeline.mapping.document import MappingDocument
from hg_pipeline.mapping.engine import MappingContext, MappingResult, map_entity
from hg_pipeline.orchestration.mapping_stage import _category_tree, _existing_companies
from hg_pipeline.quality.suites import DEFAULT_MAX_SOFT_DELETE_SHARE
from hg_pipeline.warehouse.bulk import chunks, plain_rows
from hg_pipeline.warehouse.load import live_row_count
from hg_pipeline.warehouse.staging import staged_records
from hg_pipeline.warehouse.tables import LOADED_TABLES

# Companies first: contacts and assets follow their company's decision.
MAP_ORDER = ("companies", "contacts", "assets", "products", "members")
NEEDS_COMPANIES = ("contacts", "assets")


@dataclass(frozen=True)
class EntityImpact:
    entity: str
    live: int  # live rows a sync created
    leaving: int  # of those, rows the candidate would no longer load


@dataclass(frozen=True)
class MappingImpact:
    entities: tuple[EntityImpact, ...]  # LOADED_ENTITIES order
    max_share: float

    @property
    def too_large(self) -> bool:
        """True when some entity would lose more than the share of its live rows."""
        return any(e.live and e.leaving > self.max_share * e.live for e in self.entities)

    @property
    def leaving(self) -> dict[str, int]:
        """entity -> rows that would be soft-deleted, for entities that lose any."""
        return {e.entity: e.leaving for e in self.entities if e.leaving}

    def describe(self) -> str:
        """'39 of 39 companies, 96 of 96 contacts'."""
        return ", ".join(f"{e.leaving} of {e.live} {e.entity}" for e in self.entities if e.leaving)


def mapping_impact(engine: Engine, tenant_id: str, document: MappingDocument,
                   max_share: float = DEFAULT_MAX_SOFT_DELETE_SHARE) -> MappingImpact:
    live = {entity: live_psa_ids(engine, tenant_id, entity) for entity in LOADED_ENTITIES}
    leaving: dict[str, int] = {}
    if any(live.values()):  # a tenant with nothing loaded yet has nothing to lose
        for entity, result in _map_all(engine, tenant_id, document, live).items():
            loaded = {row["psa_id"] for row in result.rows}
            # Live rows whose record is staged but not loaded; vanished records are not the mapping's doing.
            decided = {d.psa_id for d in result.decisions}
            leaving[entity] = len((live[entity] & decided) - loaded)
    return MappingImpact(
        tuple(EntityImpact(entity, len(live[entity]), leaving.get(entity, 0)) for entity in LOADED_ENTITIES),
        max_share,
    )


def _map_all(engine: Engine, tenant_id: str, document: MappingDocument,
             live: dict[str, set[str]]) -> dict[str, MappingResult]:
    """The candidate's result for every entity with live rows (and companies, which contacts
    and assets need). No record counts as new: new ones are those first seen after the
    version is stored, so `auto_import_new` applies to none of today's staged records."""
    context = MappingContext(
        tenant_id=tenant_id,
        existing_companies=_existing_companies(engine, tenant_id),
        category_tree=_category_tree(engine, tenant_id),
    )
    wanted = {entity for entity, ids in live.items() if ids}
    if wanted & set(NEEDS_COMPANIES):
        wanted.add("companies")
    results: dict[str, MappingResult] = {}
    for entity in MAP_ORDER:
        if entity not in wanted:
            continue
        categories = None
        if entity == "products":
            categories = [s.record for s in staged_records(engine, tenant_id, "product_categories")]
        records = [s.record for s in staged_records(engine, tenant_id, entity)]
        results[entity] = map_entity(entity, records, document, context,
                                     companies=results.get("companies"), categories=categories)
    return results


def live_psa_ids(engine: Engine, tenant_id: str, entity: str, among: list[str] | None = None) -> set[str]:
    """PSA ids of the live rows a sync created (the rows a sync may soft-delete); only those
    `among` these ids when given."""
    table = LOADED_TABLES[entity]
    query = select(table.c.psa_id).where(table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None),
                                         table.c.origin == "psa")
    with engine.connect() as conn:
        if among is None:
            return {psa_id for (psa_id,) in plain_rows(conn, query)}
        return {psa_id for ids in chunks(among) for psa_id in conn.scalars(query.where(table.c.psa_id.in_(ids)))}


def live_count(engine: Engine, tenant_id: str, entity: str) -> int:
    """How many live rows a sync created (what `live_psa_ids` would list)."""
    with engine.connect() as conn:
        return live_row_count(conn, LOADED_TABLES[entity], tenant_id, origin="psa")
