"""The map stage outside Dagster: staged records + a mapping -> MappingResult.

Every mapping run records its decisions in `mapping_decisions`, which `mapping pending`
reads. Two callers: the map stages (`run_mapping`, the stored mapping in force, which they
require) and the initial sync's worklist (`record_worklist`, the stored mapping or, when
none is stored yet, an empty document).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from sqlalchemy import Engine, bindparam, exists, func, select, text

from hg_pipeline.entities import LOADED_ENTITIES, MAP_INPUTS, REFERENCE_ENTITIES
from hg_pipeline.mapping.categories import CategoryTree
from hg_pipeline.mapping.document import MappingDocument, parse_document
from hg_pipeline.mapping.engine import PENDING, Decision, MappingContext, MappingResult, map_entity
from hg_pipeline.mapping.packed import blocks_of
from hg_pipeline.mapping.worklist import Worklist, build_worklist, psa_choices
from hg_pipeline.warehouse.bulk import (
    chunks, copy_rows, create_temp_twin, distinct_from, index_temp, qualified, temp_ref, utc,
)
from hg_pipeline.warehouse.load import tenant_category_rows
from hg_pipeline.warehouse.map_marks import (
    MapMark, marked_at, read_mark, staged_changes, staged_through, upstream_key,
)
from hg_pipeline.warehouse.mappings import StoredMapping, current_mapping, mapping_version
from hg_pipeline.warehouse.staging import (
    StagedRecord, quarantine_records, staged_first_seen_after, staged_records, streamed_records,
)
from hg_pipeline.warehouse.tables import companies, mapping_decisions
from hg_pipeline.warehouse.tenants import get_tenant

# What the initial sync extracts and its worklist maps (assets are not needed to map).
WORKLIST_ENTITIES = ("companies", "contacts", "products", "members")
# The records a type or category is counted on.
COUNTED_ENTITIES = ("companies", "contacts", "products")
NO_GROUP = "(none)"


# What decided a product, for the map's `decided_by` figures: the rule, in the source's words.
DECIDED_BY = ("record", "distribution", "category", "smart", "pending", "ignored")
_SOURCE_OF_RULE = {"subcategory": "category", "auto_import": "category"}


@dataclass
class Tally:
    """What a map's decisions add up to, counted as they are recorded: one pass over them (a
    pass over 100,000 packed decisions costs about 0.2 s)."""

    outcomes: Counter = field(default_factory=Counter)
    pending_groups: Counter = field(default_factory=Counter)  # group (type, category) -> pending records
    decided_by: Counter = field(default_factory=lambda: Counter(dict.fromkeys(DECIDED_BY, 0)))
    orphans: list[Decision] = field(default_factory=list)  # pointing at a company the PSA does not have

    def add(self, decision: Decision) -> None:
        outcome = decision.outcome
        self.outcomes[outcome] += 1
        if outcome == "pending":
            self.pending_groups[decision.group or NO_GROUP] += 1
        self.decided_by[_SOURCE_OF_RULE.get(decision.rule, decision.rule) if outcome == "mapped" else outcome] += 1
        if decision.rule == "unknown_parent":
            self.orphans.append(decision)


@dataclass
class MappedEntity:
    result: MappingResult
    version: int | None  # the mapping version applied; None: no mapping stored, an empty document
    category_ids: set[str]  # every category id the tenant's tree holds
    quarantined: int  # records pointing at a company the PSA does not have
    tally: Tally  # of the result's decisions (a delta's: those of its scope)


def run_mapping(engine: Engine, tenant_id: str, entity: str,
                upstream: MappingResult | None = None, *, run_id: str | None = None,
                incremental: bool = False) -> MappedEntity:
    """The map stage: the stored mapping in force, required ("no mapping, no full sync").
    `incremental`: a delta when it is safe (see `_delta`)."""
    get_tenant(engine, tenant_id)
    stored = current_mapping(engine, tenant_id)
    if stored is None:
        raise ValueError(f"tenant {tenant_id} has no mapping yet: import one with "
                         f"`hg-pipeline mapping import {tenant_id} FILE`")
    return map_and_record(engine, tenant_id, entity, stored, upstream, run_id=run_id, incremental=incremental)


def map_and_record(engine: Engine, tenant_id: str, entity: str, stored: StoredMapping | None,
                   upstream: MappingResult | None = None, *, run_id: str | None = None,
                   staged: list[StagedRecord] | None = None, quarantine: bool = True,
                   incremental: bool = False) -> MappedEntity:
    """Maps the staged records of `entity` with `stored` (None: an empty document) and records
    every decision. With `quarantine`, records pointing at a company the PSA does not have go
    to `quarantine` too (the map stages do it; the worklist leaves it to them). With
    `incremental`, only what staging changed since the last load's mark, when that is safe
    (`_delta`); the result's `scope` then names the records it decided."""
    document = _document(stored)
    version = stored.version if stored else None
    tree = _category_tree(engine, tenant_id)
    categories = None
    if entity == "products":
        categories = [s.record for s in staged_records(engine, tenant_id, "product_categories")]
    mark = MapMark(version, staged_through(engine, tenant_id, entity), _depends_on(upstream, tree.paths(), categories))
    delta = _delta(engine, tenant_id, entity, document, mark) if incremental and staged is None else None
    smart = entity == "products" and document.products.smart_mapping.enabled  # it learns from every product
    # Which records are new matters only to a section that does not import new ones.
    asks_new = stored is not None and not getattr(getattr(document, entity, None), "auto_import_new", True)
    if staged is None and delta is None and not smart:
        # A whole map streams the records: memory holds the result, not the entity's records too.
        records: Iterable[dict] = (s.record for s in streamed_records(engine, tenant_id, entity))
        new_ids = staged_first_seen_after(engine, tenant_id, entity, stored.created_at) if asks_new else set()
    else:
        if staged is None:
            staged = staged_records(engine, tenant_id, entity, None if delta is None else delta.ids)
        records = [s.record for s in staged]
        new_ids = {s.psa_id for s in staged if utc(s.first_seen_at) > stored.created_at} if asks_new else set()
    context = MappingContext(
        tenant_id=tenant_id,
        new_psa_ids={entity: new_ids},
        existing_companies=_existing_companies(engine, tenant_id),
        category_tree=tree,
    )
    if smart:  # trained once per map stage, on this tenant's mappings
        from hg_pipeline.mapping.smart.tenant import tenant_suggester

        context.suggest = tenant_suggester(document, records, tree)
    result = map_entity(entity, records, document, context, companies=upstream, categories=categories)
    # The tree as this result's load leaves it (with the custom categories it creates).
    result.mark = mark if categories is None else replace(mark, upstream_key=_depends_on(
        None, [*tree.paths(), *(c["path"] for c in result.categories)], categories))
    if delta is not None:
        result.scope = sorted({*delta.ids, *delta.gone})
    tally = _record_decisions(engine, tenant_id, entity, result, version, scope=result.scope)
    orphans = tally.orphans if quarantine else []
    if orphans:
        orphaned = staged_records(engine, tenant_id, entity, [d.psa_id for d in orphans])
        payloads = {s.psa_id: s.record for s in orphaned}
        with engine.begin() as conn:
            quarantine_records(conn, tenant_id, entity,
                               [(d.psa_id, d.reason, payloads.get(d.psa_id)) for d in orphans],
                               run_id, datetime.now(timezone.utc))
    return MappedEntity(result, version, {tree.id_of(path) for path in tree.paths()}, len(orphans), tally)


def _document(stored: StoredMapping | None) -> MappingDocument:
    return _parsed(stored.document) if stored else MappingDocument()


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> MappingDocument:
    """A stored version's document, parsed once per process: every map stage of a run, and the
    delta's comparison with the last load's version, read it (nothing changes a parsed document)."""
    return parse_document(text)


# --- the nightly's delta ------------------------------------------------------------------

# Entities a nightly may map as a delta. Companies are mapped whole: contacts and assets read
# every company's decision from their result (and there are few).
DELTA_ENTITIES = ("contacts", "products", "members", "assets")
# Above this share of the entity's staged records changed, a whole map is as cheap and simpler.
DELTA_MAX_SHARE = 0.2


@dataclass(frozen=True)
class Delta:
    ids: list[str]  # records to map: staged after the mark, and every record a record rule names
    gone: list[str]  # records that vanished after the mark (their rows leave)


def _delta(engine: Engine, tenant_id: str, entity: str, document: MappingDocument, now: MapMark) -> Delta | None:
    """What to map when only staging changed since the last load of `entity`; None: map it whole.

    A record's decision depends on its staged record, the mapping document, whether it was first
    seen after the mapping version (fixed per version), its company's decision (contacts, assets),
    the category tree and the PSA's category names (products) and, for a `map` record rule, the
    target and the ids other records took. So a delta is safe when the mapping version and what
    `_depends_on` digests are those of the last load; the records that record rules name are
    always mapped again (their targets may have changed; there are few). Smart mapping is
    trained on the tenant's products and proposes per PSA category: products are then mapped
    whole."""
    if entity not in DELTA_ENTITIES or now.mapping_version is None:
        return None
    if entity == "products" and document.products.smart_mapping.enabled:
        return None
    last = read_mark(engine, tenant_id, entity)
    if last is None or last.staged_through is None or last.upstream_key != now.upstream_key:
        return None
    if last.mapping_version != now.mapping_version and not _same_rules(engine, tenant_id, entity,
                                                                        last.mapping_version, document):
        return None
    changes = staged_changes(engine, tenant_id, entity, last.staged_through)
    if len(changes.changed) + len(changes.gone) > DELTA_MAX_SHARE * changes.live:
        return None
    named = getattr(document, entity).records
    return Delta(ids=sorted({*changes.changed, *named}), gone=changes.gone)


def _same_rules(engine: Engine, tenant_id: str, entity: str, version: int | None, document: MappingDocument) -> bool:
    """Whether mapping `version` decides `entity` exactly as `document` does: the same section,
    none of whose decisions depends on when a version was stored (with `auto_import_new` false,
    the records first seen after the version are pending: a new version moves that line)."""
    section = getattr(document, entity)
    if version is None or not getattr(section, "auto_import_new", True):
        return False
    old = mapping_version(engine, tenant_id, version)
    return old is not None and getattr(_document(old), entity) == section


def _depends_on(upstream: MappingResult | None, paths: Iterable[str], categories: list[dict] | None) -> str:
    """A digest of what an entity's decisions read besides its records and the document: the
    company decisions (contacts, assets: psa id, outcome, HighGround id), the category tree and
    the PSA's categories (products); "" for the others."""
    if upstream is not None:
        ids = {row["psa_id"]: row["id"] for row in upstream.rows}
        return upstream_key((d.psa_id, d.outcome, ids.get(d.psa_id) or "") for d in upstream.decisions)
    if categories is not None:
        return upstream_key([*((path,) for path in set(paths)),
                             *((c["psa_id"], c["name"], c.get("parent_psa_id") or "", c.get("path") or "")
                               for c in categories)])
    return ""


# --- what a remap reaches -----------------------------------------------------------------

@dataclass(frozen=True)
class RemapReach:
    version: int  # the mapping version in force
    entities: tuple[str, ...]  # the loaded entities to map and load again, in load order
    inputs: tuple[str, ...]  # mapped only as another's input (the companies for contacts): not loaded
    left: tuple[str, ...]  # neither: the remap cannot change one of their decisions


def remap_reach(engine: Engine, tenant_id: str) -> RemapReach | None:
    """Which loaded entities a remap must map and load again; None when no mapping is stored
    (the run itself then fails with that). An entity is left out only when its last load's
    map mark shows that mapping it now would decide every record as then (`_decided_as_loaded`).
    Contacts and assets read the companies' decisions: they follow the companies, and follow
    them too when their last load is older than the companies' (a run whose contacts map
    failed, or companies materialized alone in the UI). A reached reader takes the companies'
    map as its input; when the companies themselves are not reached, that map is not loaded
    (it would change no row, and its mark would make the other reader look stale). Spend
    decides for itself (its own mark)."""
    stored = current_mapping(engine, tenant_id)
    if stored is None:
        return None
    document = _document(stored)
    reached = {entity for entity in LOADED_ENTITIES
               if not _decided_as_loaded(engine, tenant_id, entity, stored.version, document)}
    marked = marked_at(engine, tenant_id)
    reached |= {reader for reader, upstream in MAP_INPUTS.items()
                if upstream in reached or marked.get(reader) is None or marked.get(upstream) is None
                or marked[reader] < marked[upstream]}
    inputs = {MAP_INPUTS[reader] for reader in reached & set(MAP_INPUTS)} - reached
    left = set(LOADED_ENTITIES) - reached - inputs
    return RemapReach(stored.version, _in_load_order(reached), _in_load_order(inputs), _in_load_order(left))


def _in_load_order(entities: set[str]) -> tuple[str, ...]:
    return tuple(entity for entity in LOADED_ENTITIES if entity in entities)


def _decided_as_loaded(engine: Engine, tenant_id: str, entity: str, version: int, document: MappingDocument) -> bool:
    """Whether mapping `entity` with `document` (version `version`) now decides each record as
    its last load did: nothing staged since that load's map, the same rules (`_same_rules`),
    no record rule (a `map` rule's target may have changed: `_delta` maps those again too) and,
    for products, no smart mapping and the same category tree and PSA categories. The companies'
    decisions that contacts and assets read are `remap_reach`'s to follow."""
    last = read_mark(engine, tenant_id, entity)
    if last is None or last.staged_through is None or last.mapping_version is None:
        return False
    if last.staged_through != staged_through(engine, tenant_id, entity):
        return False
    if getattr(document, entity).records:
        return False
    if last.mapping_version != version and not _same_rules(engine, tenant_id, entity, last.mapping_version, document):
        return False
    if entity == "products":
        if document.products.smart_mapping.enabled:
            return False
        categories = [s.record for s in staged_records(engine, tenant_id, "product_categories")]
        return last.upstream_key == _depends_on(None, _category_tree(engine, tenant_id).paths(), categories)
    return True


# --- the worklist -----------------------------------------------------------------------


@dataclass
class WorklistRun:
    worklist: Worklist
    version: int | None  # the mapping version applied; None: none stored
    outcomes: dict[str, Counter]  # entity -> outcome -> records


def record_worklist(engine: Engine, tenant_id: str) -> WorklistRun:
    """Maps what the initial sync staged with the mapping in force (an empty document when
    none is stored: every type and category pending), records the decisions like a map stage,
    and says what waits for a decision."""
    get_tenant(engine, tenant_id)
    stored = current_mapping(engine, tenant_id)
    staged: dict[str, list[StagedRecord]] = {}
    results: dict[str, MappingResult] = {}
    for entity in WORKLIST_ENTITIES:
        staged[entity] = staged_records(engine, tenant_id, entity)
        upstream = results["companies"] if entity == "contacts" else None
        results[entity] = map_and_record(engine, tenant_id, entity, stored, upstream,
                                         staged=staged[entity], quarantine=False).result
    pending = {entity: Counter(d.group or NO_GROUP for d in result.decisions if d.outcome == PENDING)
               for entity, result in results.items()}
    choices = psa_choices(_reference_lists(engine, tenant_id),
                          {e: [s.record for s in staged[e]] for e in COUNTED_ENTITIES})
    return WorklistRun(
        worklist=build_worklist(_document(stored), choices, pending),
        version=stored.version if stored else None,
        outcomes={entity: Counter(d.outcome for d in result.decisions) for entity, result in results.items()},
    )


@dataclass
class TenantWorklist:
    worklist: Worklist
    version: int | None  # the mapping version in force; None: none stored
    decided_with: set[int | None]  # the mapping versions the recorded decisions were made with
    staged: bool  # anything staged at all (the initial sync ran)


def read_worklist(engine: Engine, tenant_id: str) -> TenantWorklist:
    """What waits for a decision now (for `mapping pending`): the staged types and categories
    that no rule of the mapping in force covers, and the records the last mapping run (map
    stage or worklist) left pending."""
    get_tenant(engine, tenant_id)
    stored = current_mapping(engine, tenant_id)
    reference = _reference_lists(engine, tenant_id)
    records = {e: [s.record for s in staged_records(engine, tenant_id, e)] for e in COUNTED_ENTITIES}
    t = mapping_decisions
    with engine.connect() as conn:
        decided = conn.execute(select(t.c.entity, t.c.mapping_version).distinct().where(
            t.c.tenant_id == tenant_id)).all()
    document = _document(stored)
    version = stored.version if stored else None
    # A decision made with an older version whose rules for its entity are those in force is
    # the decision of the version in force (a delta map leaves it as it was: mapping_stage._delta).
    versions = {version if v != version and _same_rules(engine, tenant_id, entity, v, document) else v
                for entity, v in decided}
    worklist = build_worklist(document, psa_choices(reference, records), pending_summary(engine, tenant_id))
    staged = any(reference.values()) or any(records.values())
    return TenantWorklist(worklist, version, versions, staged)


def _reference_lists(engine: Engine, tenant_id: str) -> dict[str, list[dict]]:
    return {entity: [s.record for s in staged_records(engine, tenant_id, entity)] for entity in REFERENCE_ENTITIES}


def _existing_companies(engine: Engine, tenant_id: str) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(companies.c.id, companies.c.name, companies.c.hg_type).where(
            companies.c.tenant_id == tenant_id, companies.c.deleted_at.is_(None))).all()
    return {row.id: {"name": row.name, "hg_type": row.hg_type} for row in rows}


def _category_tree(engine: Engine, tenant_id: str) -> CategoryTree:
    custom = [row["path"] for row in tenant_category_rows(engine, tenant_id) if row["tenant_id"] == tenant_id]
    return CategoryTree(custom_paths=custom, tenant_id=tenant_id)


def _record_decisions(engine: Engine, tenant_id: str, entity: str, result: MappingResult,
                      version: int | None, *, scope: list[str] | None = None) -> Tally:
    """Store the decisions that changed since the last map stage (a remap usually changes few).
    `scope`: the records a delta decided (the others keep theirs, and the version number they
    were decided with); None: every record.

    The decisions are copied a block at a time: straight in on the entity's first map, else
    into a temp table and compared there. Memory holds one block, not the entity's decisions
    and what is stored for them. Returns their tally, counted on the way."""
    t = mapping_decisions
    now = datetime.now(timezone.utc)
    columns = ("tenant_id", "entity", "psa_id", "outcome", "rule", "reason", "group_key", "mapping_version",
               "decided_at")
    with engine.begin() as conn:
        stored, listed = qualified(conn, t), ", ".join(columns)
        first = not conn.scalar(select(exists().where(t.c.tenant_id == tenant_id, t.c.entity == entity)))
        fresh = stored if first else temp_ref(conn, "fresh_decisions")  # the first map: nothing to compare
        if not first:
            create_temp_twin(conn, t, "fresh_decisions")
        tally = Tally()
        for block in blocks_of(result.decisions):
            for decision in block:
                tally.add(decision)
            copy_rows(conn, fresh, columns, ((tenant_id, entity, d.psa_id, d.outcome, d.rule, d.reason, d.group,
                                              version, now) for d in block))
        if first:
            return tally
        index_temp(conn, "fresh_decisions", ("psa_id",))
        mine = {"tenant": tenant_id, "entity": entity}
        same = " AND ".join(f"NOT (f.{c} {distinct_from(conn)} d.{c})"
                            for c in ("outcome", "rule", "reason", "group_key", "mapping_version"))
        # A stored decision stays when the same one was made again; outside a delta's scope, always.
        unchanged = f"EXISTS (SELECT 1 FROM {fresh} f WHERE f.psa_id = d.psa_id AND {same})"
        leaving = f"DELETE FROM {stored} AS d WHERE d.tenant_id = :tenant AND d.entity = :entity AND NOT {unchanged}"
        if scope is None:
            conn.execute(text(leaving), mine)
        else:
            for ids in chunks(scope):
                conn.execute(text(leaving + " AND d.psa_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                             {**mine, "ids": list(ids)})
        conn.execute(text(
            f"INSERT INTO {stored} ({listed}) SELECT {listed} FROM {fresh} AS f WHERE NOT EXISTS (SELECT 1 FROM"
            f" {stored} AS d WHERE d.tenant_id = :tenant AND d.entity = :entity AND d.psa_id = f.psa_id)"), mine)
    return tally


def mapping_targets(engine: Engine, tenant_id: str) -> tuple[set[str], set[str]]:
    """What a tenant's mapping may point at: HighGround company ids and category paths."""
    return set(_existing_companies(engine, tenant_id)), set(_category_tree(engine, tenant_id).paths())


def pending_summary(engine: Engine, tenant_id: str, entity: str | None = None) -> dict[str, dict[str, int]]:
    """entity -> group (type or category) -> number of pending records, from the last map stage
    (of one `entity` when given)."""
    t = mapping_decisions
    only = [] if entity is None else [t.c.entity == entity]
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.entity, t.c.group_key, func.count())
            .where(t.c.tenant_id == tenant_id, t.c.outcome == "pending", *only)
            .group_by(t.c.entity, t.c.group_key)
            .order_by(t.c.entity)
        ).all()
    summary: dict[str, dict[str, int]] = {}
    for entity, group, count in rows:
        summary.setdefault(entity, {})[group or NO_GROUP] = count
    return summary


def decision_counts(engine: Engine, tenant_id: str, entity: str) -> Counter:
    """outcome -> records of `entity`, from the recorded decisions."""
    t = mapping_decisions
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.outcome, func.count()).where(t.c.tenant_id == tenant_id, t.c.entity == entity)
                            .group_by(t.c.outcome)).all()
    return Counter(dict(rows))
