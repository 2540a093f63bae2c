"""Sensors: tenants become partitions (and get their initial sync); a new mapping version
launches that tenant's remap. Both skip what is already done: no initial sync for a tenant
whose reference data a sync (CLI, demo, UI) already brought, no remap of a version a sync
already applied."""

from __future__ import annotations

import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from hg_pipeline.orchestration.jobs import KIND_TAG, TENANT_TAG, initial_sync_job, remap_job, sync_tags
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.warehouse.mappings import latest_versions
from hg_pipeline.warehouse.staging import has_staged_records
from hg_pipeline.warehouse.sync_history import applied_versions, tenants_with_reference_data
from hg_pipeline.warehouse.tenants import list_tenants


@sensor(
    name="tenant_partitions",
    job=initial_sync_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a `tenants` partition for every tenant in the warehouse and starts its initial sync.",
)
def tenant_partitions_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    seen = set(json.loads(context.cursor or "[]"))
    engine = warehouse.engine()
    tenants = {tenant.tenant_id: tenant for tenant in list_tenants(engine)}
    tenant_ids = list(tenants)
    existing = set(context.instance.get_dynamic_partitions(tenants_partitions.name))
    missing = [t for t in tenant_ids if t not in existing]
    synced = tenants_with_reference_data(engine)  # e.g. by `hg-pipeline sync` or the demo
    fresh = [t for t in tenant_ids if t not in seen and t not in synced]
    if not missing and not fresh:
        return SkipReason(f"{len(tenant_ids)} tenant(s), all known")
    context.update_cursor(json.dumps(sorted(seen | set(tenant_ids))))
    return SensorResult(
        run_requests=[
            RunRequest(partition_key=t, run_key=f"initial-{t}", tags=sync_tags(tenants[t], "initial"))
            for t in fresh
        ],
        dynamic_partitions_requests=[tenants_partitions.build_add_request(missing)] if missing else [],
    )


@sensor(
    name="mapping_changes",
    job=remap_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Launches a tenant's remap once for every new mapping version (run key on the version).",
)
def mapping_change_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    engine = warehouse.engine()
    handled = json.loads(context.cursor or "{}")
    versions = latest_versions(engine)
    partitions = set(context.instance.get_dynamic_partitions(tenants_partitions.name))
    applied = applied_versions(engine)  # by a full sync, remap or nightly resync, whoever ran it
    requests = [
        RunRequest(partition_key=t, run_key=f"remap-{t}-v{v}", tags={TENANT_TAG: t, KIND_TAG: "remap"})
        for t, v in sorted(versions.items())
        if handled.get(t) != v and applied.get(t, 0) < v and t in partitions and has_staged_records(engine, t)
    ]
    context.update_cursor(json.dumps(versions, sort_keys=True))
    return requests or SkipReason("no new mapping version with staged data")
