"""The asset graph: extract -> map -> load for every entity, one factory, partitioned by tenant.

    <entity>_raw      PSA pages streamed into staging (raw_records); bad records quarantined
    <entity>_mapped   the tenant's mapping applied to the staged records (no PSA call)
    <entity>          the mapped set merged into the warehouse table

Reference data (company types, contact types, product categories) only has the
extract stage: the MSP maps it, nothing loads it.
"""


import functools
import gc
import inspect
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    RetryRequested,
    asset,
)

from hg_pipeline import secrets
from hg_pipeline.connectors import CredentialError
from hg_pipeline.connectors.registry import source
from hg_pipeline.extract import ExtractError, extract_entity
from hg_pipeline.imports.batches import staged_summary
from hg_pipeline.entities import ENTITY_LOADS, LOADED_ENTITIES, MAP_INPUTS, NORMALIZED_FIELDS, REFERENCE_ENTITIES
from hg_pipeline.mapping.engine import MappingResult
from hg_pipeline.orchestration.handoff import release, released_reason
from hg_pipeline.orchestration.checks import check_specs, run_checks
from hg_pipeline.mapping.worklist import unmapped_table
from hg_pipeline.orchestration.mapping_stage import (
    WORKLIST_ENTITIES,
    WorklistRun,
    decision_counts,
    pending_summary,
    record_worklist,
    run_mapping,
)
from hg_pipeline.orchestration.metadata import preview
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import PsaResource, WarehouseResource
from hg_pipeline.quality.suites import DEFAULT_MAX_SOFT_DELETE_SHARE
from hg_pipeline.warehouse import outage
from hg_pipeline.warehouse.load import LoadError, load_entity
from hg_pipeline.warehouse.tenants import TenantError, get_tenant

EXTRACT_GROUP, MAP_GROUP, LOAD_GROUP = "extract", "map", "load"
WORKLIST_GROUP = "worklist"  # the initial sync's mapping worklist, outside the full sync's groups

MAP_DEPS = {"products": ["product_categories_raw"], "companies": ["company_types_raw"],
            "contacts": ["contact_types_raw"]}


class ExtractConfig(Config):
    """incremental: fetch only what changed since the last extraction (nightly resync)."""

    incremental: bool = False


@contextmanager
def _bulk_work():
    """Pause CPython's cyclic garbage collector while a stage builds hundreds of thousands of
    short-lived records: they hold no reference cycles (reference counting frees them), yet
    their allocation makes the collector rescan the whole heap over and over (about 3 s of a
    large remap)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fail(tenant_id: str, step: str, exc: Exception | str) -> Failure:
    """The step's one-line Failure, every secret scrubbed (it goes to the event log, the
    CLI, sync_runs and the failure e-mail)."""
    lines = str(exc).strip().splitlines()
    reason = secrets.scrub(lines[0] if lines else type(exc).__name__)
    return Failure(description=f"tenant {tenant_id}: {step} failed: {reason}",
                   metadata={"tenant": tenant_id, "step": step, "reason": reason})


@contextmanager
def _step(tenant_id: str, step: str, warehouse: WarehouseResource):
    """Whatever a stage raises leaves it as `_fail`'s one line: an exception's own text may
    hold a secret (a URL with the company id) and Dagster would keep it, trace and all."""
    try:
        yield
    except (Failure, RetryRequested):
        raise
    except Exception as exc:  # noqa: BLE001 - turned into the step's one-line failure
        if outage.is_warehouse_error(exc):
            rolled_back = "; its changes were rolled back" if outage.is_unreachable(exc) else ""
            raise _fail(tenant_id, step, outage.describe(exc, warehouse.database_url) + rolled_back) from None
        kind = "" if type(exc).__module__.startswith("dagster") else f"{type(exc).__name__}: "
        raise _fail(tenant_id, step, f"{kind}{exc}") from None


def _stage(step: str):
    """Decorates a stage body (asset function, generator or not) with `_step`."""

    def decorate(body):
        if inspect.isgeneratorfunction(body):
            @functools.wraps(body)
            def stage(context: AssetExecutionContext, **kwargs):
                with _step(context.partition_key, step, kwargs["warehouse"]):
                    yield from body(context, **kwargs)
        else:
            @functools.wraps(body)
            def stage(context: AssetExecutionContext, **kwargs):
                with _step(context.partition_key, step, kwargs["warehouse"]):
                    return body(context, **kwargs)
        return stage

    return decorate


def extract_asset(entity: str) -> AssetsDefinition:
    @asset(
        name=f"{entity}_raw",
        group_name=EXTRACT_GROUP,
        partitions_def=tenants_partitions,
        kinds={"python"},
        description=f"{entity} as the PSA returns them, streamed page by page into staging.",
    )
    @_stage(f"extract {entity}")
    def _extract(context: AssetExecutionContext, config: ExtractConfig, warehouse: WarehouseResource,
                 psa: PsaResource) -> MaterializeResult:
        tenant_id = context.partition_key
        engine = warehouse.engine()
        try:
            tenant = get_tenant(engine, tenant_id)
            if source(tenant.source).pushed:  # files or the import API staged it already
                return MaterializeResult(metadata={"tenant": tenant_id, **staged_summary(engine, tenant_id, entity)})
            connector = psa.connector_for(tenant)
        except (TenantError, CredentialError, ValueError) as exc:
            raise _fail(tenant_id, f"extract {entity}", exc) from None
        try:
            result = extract_entity(engine, tenant, entity, connector, context.run_id, config.incremental)
        except ExtractError as exc:
            raise _fail(tenant_id, f"extract {entity}", exc) from None
        counts, bad = result.counts, result.quarantined
        return MaterializeResult(metadata={
            "tenant": tenant_id,
            "mode": result.mode,
            "received": counts.received,
            "new": counts.new,
            "changed": counts.changed,
            "vanished": counts.vanished,
            "quarantined": len(bad),
            "resumed_after_pages": result.resumed_pages,
            "quarantine_sample": MetadataValue.json([{"psa_id": i, "reason": r} for i, r, _ in bad[:10]]),
            "preview": preview(result.preview, NORMALIZED_FIELDS[entity]),
        })

    return _extract


class MapConfig(Config):
    """max_soft_delete_share: the share of live rows a sync may soft-delete because their PSA
    records vanished or the mapping no longer loads them beyond what the mapping version
    accepted (the `soft_delete_volume` check); raise it for one run to accept a
    large deletion that is known to be right.
    incremental: map (and load) only the records whose staging changed since the last map of
    the same mapping version, when that is safe (nightly resync; see mapping_stage.py)."""

    max_soft_delete_share: float = DEFAULT_MAX_SOFT_DELETE_SHARE
    incremental: bool = False


def map_asset(entity: str) -> AssetsDefinition:
    upstream = MAP_INPUTS.get(entity)
    spec = dict(
        name=f"{entity}_mapped",
        group_name=MAP_GROUP,
        partitions_def=tenants_partitions,
        deps=[f"{entity}_raw", *MAP_DEPS.get(entity, [])],
        check_specs=check_specs(entity),
        kinds={"python"},
        description=f"The tenant's mapping applied to the staged {entity}: mapped, pending and ignored records.",
    )
    if upstream:
        @asset(**spec, ins={"upstream": AssetIn(key=AssetKey(f"{upstream}_mapped"))})
        @_stage(f"map {entity}")
        def _map_with(context: AssetExecutionContext, config: MapConfig, warehouse: WarehouseResource,
                      upstream: MappingResult):
            yield from _map(context, config, warehouse, entity, upstream)

        return _map_with

    @asset(**spec)
    @_stage(f"map {entity}")
    def _map_alone(context: AssetExecutionContext, config: MapConfig, warehouse: WarehouseResource):
        yield from _map(context, config, warehouse, entity, None)

    return _map_alone


def _map(context: AssetExecutionContext, config: MapConfig, warehouse: WarehouseResource, entity: str,
         upstream: MappingResult | None):
    tenant_id = context.partition_key
    engine = warehouse.engine()
    try:
        with _bulk_work():
            mapped = run_mapping(engine, tenant_id, entity, upstream, run_id=context.run_id,
                                 incremental=config.incremental)
    except (TenantError, ValueError) as exc:
        raise _fail(tenant_id, f"map {entity}", exc) from None
    result = mapped.result
    if result.scope is None:
        outcomes, pending_groups = mapped.tally.outcomes, mapped.tally.pending_groups
    else:  # a delta: the entity's figures are those of every recorded decision
        outcomes = decision_counts(engine, tenant_id, entity)
        pending_groups = Counter(pending_summary(engine, tenant_id, entity).get(entity, {}))
    total = sum(outcomes.values())
    # Decisions are in mapping_decisions already; only the map stages downstream of this one
    # need them, and pickling 100,000 of them between steps costs seconds.
    passed_on = result if entity in MAP_INPUTS.values() else replace(result, decisions=[])
    yield Output(passed_on, metadata={
        "tenant": tenant_id,
        "mapping_version": mapped.version,
        "mode": "whole" if result.scope is None else "delta",
        "remapped": len(result.decisions) if result.scope is None else len(result.scope),
        "records": total,
        "mapped": outcomes["mapped"],
        "pending": outcomes["pending"],
        "ignored": outcomes["ignored"],
        "quarantined": mapped.quarantined,
        "coverage_pct": MetadataValue.float(round(100.0 * (total - outcomes["pending"]) / total, 1) if total else 100.0),
        "pending_by_group": MetadataValue.json(dict(pending_groups.most_common(10))),
        **({"decided_by": MetadataValue.json(dict(mapped.tally.decided_by))} if entity == "products" else {}),
        "preview": preview(result.rows, ENTITY_LOADS[entity].columns),
    })
    yield from run_checks(engine, tenant_id, entity, result, upstream, mapped.category_ids,
                          config.max_soft_delete_share)
    release(passed_on, "rows", "decisions", "categories", "distributions")


def load_asset(entity: str) -> AssetsDefinition:
    @asset(
        name=entity,
        group_name=LOAD_GROUP,
        partitions_def=tenants_partitions,
        ins={"mapped": AssetIn(key=AssetKey(f"{entity}_mapped"))},
        kinds={"postgres"},
        description=f"HighGround {entity}: the mapped set merged into the warehouse in one transaction.",
    )
    @_stage(f"load {entity}")
    def _load(context: AssetExecutionContext, warehouse: WarehouseResource, mapped: MappingResult) -> MaterializeResult:
        tenant_id = context.partition_key
        lost = warehouse.lost_tenant_lock() or released_reason(mapped)  # never write beside another sync
        if lost:
            raise _fail(tenant_id, f"load {entity}", lost)
        try:
            with _bulk_work():
                counts = load_entity(
                    warehouse.engine(), tenant_id, entity, mapped.rows,
                    new_categories=mapped.categories if entity == "products" else None,
                    distributions=mapped.distributions if entity == "products" else None,
                    scope=mapped.scope, mark=mapped.mark,
                )
        except LoadError as exc:
            raise _fail(tenant_id, f"load {entity}", exc) from None
        return MaterializeResult(metadata={
            "tenant": tenant_id,
            "mode": "whole" if mapped.scope is None else "delta",
            "rows": counts.rows,
            **counts.as_dict(),
            "preview": preview(mapped.rows, ENTITY_LOADS[entity].columns),
        })

    return _load


@asset(
    name="mapping_worklist",
    group_name=WORKLIST_GROUP,
    partitions_def=tenants_partitions,
    deps=[f"{entity}_raw" for entity in (*REFERENCE_ENTITIES, *WORKLIST_ENTITIES)],
    kinds={"python"},
    description="What the MSP still has to map: the staged records run through the mapping in force (an empty "
                "document before one is stored), decisions recorded for `hg-pipeline mapping pending`.",
)
@_stage("mapping worklist")
def mapping_worklist(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    tenant_id = context.partition_key
    try:
        with _bulk_work():
            run = record_worklist(warehouse.engine(), tenant_id)
    except (TenantError, ValueError) as exc:
        raise _fail(tenant_id, "mapping worklist", exc) from None
    return MaterializeResult(metadata=_worklist_metadata(tenant_id, run))


def _worklist_metadata(tenant_id: str, run: WorklistRun) -> dict:
    worklist = run.worklist
    total = sum(sum(outcomes.values()) for outcomes in run.outcomes.values())
    waiting = worklist.records_waiting
    return {
        "tenant": tenant_id,
        "mapping": f"version {run.version}" if run.version else "none stored (an empty document)",
        "types_waiting": len(worklist.unmapped),
        "records_waiting": waiting,
        **{f"{entity}_waiting": sum(worklist.pending.get(entity, {}).values()) for entity in run.outcomes},
        "coverage_pct": MetadataValue.float(round(100.0 * (total - waiting) / total, 1) if total else 100.0),
        "unmapped": MetadataValue.md(unmapped_table(worklist)),
    }


reference_assets = [extract_asset(entity) for entity in REFERENCE_ENTITIES]
entity_assets = [
    stage(entity) for entity in LOADED_ENTITIES for stage in (extract_asset, map_asset, load_asset)
]
spend_raw = extract_asset("spend")
all_assets = [*reference_assets, *entity_assets, mapping_worklist, spend_raw]

from hg_pipeline.orchestration.spend_assets import spend_load, spend_mapped  # noqa: E402 - uses this module's helpers

all_assets += [spend_mapped, spend_load]
