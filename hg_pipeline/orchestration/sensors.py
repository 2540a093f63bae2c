"""Sensors: tenants become partitions (and get their initial sync); a new mapping version
launches that tenant's remap; a committed import batch starts its tenant's sync. All skip
what is already done: no initial sync for a tenant whose reference data a sync (CLI, demo, UI)
already brought, no remap of a version a sync already applied, no sync of a batch that a sync
started after its commit already read."""

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

from hg_pipeline.imports.batches import committed_batches
from hg_pipeline.orchestration.jobs import (
    KIND_TAG,
    RECONCILE_OPS_CONFIG,
    TENANT_TAG,
    full_sync_job,
    initial_sync_job,
    remap_job,
    remap_plan,
    sync_tags,
)
from hg_pipeline.orchestration.mapping_stage import remap_reach
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.warehouse.mappings import latest_versions
from hg_pipeline.warehouse.staging import has_staged_records
from hg_pipeline.warehouse.sync_history import applied_versions, last_successes, tenants_with_reference_data
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
    # An import tenant's syncs start from its committed batches (import_batch_sensor).
    fresh = [t for t in tenant_ids if t not in seen and t not in synced and tenants[t].source != "import"]
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
    requests = []
    for t, v in sorted(versions.items()):
        if handled.get(t) != v and applied.get(t, 0) < v and t in partitions and has_staged_records(engine, t):
            selection, ops = remap_plan(remap_reach(engine, t))  # the stages the new version reaches
            requests.append(RunRequest(partition_key=t, run_key=f"remap-{t}-v{v}",
                                       tags={TENANT_TAG: t, KIND_TAG: "remap"}, asset_selection=selection,
                                       run_config={"ops": ops}))
    context.update_cursor(json.dumps(versions, sort_keys=True))
    return requests or SkipReason("no new mapping version with staged data")


# What a batch's sync is: the initial sync until the MSP has mapped (so it gets the
# ready-to-map e-mail and maps first), then a full sync. The kinds of a later successful sync
# that already read a batch: every sync reads the staged records, but only those that load
# them serve a mapped tenant.
_COVERING_KINDS = {"initial": ("initial", "full", "nightly", "remap"), "full": ("full", "nightly", "remap")}
JOB_OF_KIND = {"initial": initial_sync_job.name, "full": full_sync_job.name}


@sensor(
    name="import_batches",
    jobs=[initial_sync_job, full_sync_job],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts one sync of an import tenant for its committed batches: the initial sync until it "
                "has a mapping, then a full sync (run key on the newest batch).",
)
def import_batch_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    engine = warehouse.engine()
    after = int(context.cursor or 0)
    committed = committed_batches(engine, after=after)
    if not committed:
        return SkipReason(f"no import batch committed after batch {after}")
    partitions = set(context.instance.get_dynamic_partitions(tenants_partitions.name))
    tenants = {tenant.tenant_id: tenant for tenant in list_tenants(engine)}
    mapped, succeeded = latest_versions(engine), last_successes(engine)
    newest: dict[str, dict] = {}  # tenant -> its newest batch still to sync
    waiting = []  # batches of tenants not yet partitions (tenant_partitions adds them)
    for batch in committed:
        tenant_id = batch["tenant_id"]
        if tenant_id not in partitions:
            waiting.append(batch["batch_id"])
            continue
        kind = "full" if tenant_id in mapped else "initial"
        synced = [succeeded.get((tenant_id, k)) for k in _COVERING_KINDS[kind]]
        if not any(started and started >= batch["committed_at"] for started in synced):
            newest[tenant_id] = {**batch, "kind": kind}
    # Batches before the first waiting one are done; the others are looked at again (the run
    # keys keep a batch from starting two runs).
    handled = min(waiting) - 1 if waiting else committed[-1]["batch_id"]
    context.update_cursor(str(max(after, handled)))
    requests = [
        RunRequest(partition_key=t, run_key=f"import-{t}-{b['batch_id']}", job_name=JOB_OF_KIND[b["kind"]],
                   tags=sync_tags(tenants[t], b["kind"]),
                   # Whole maps: the batch's staging times come from the import API's clock, not this one's.
                   run_config={"ops": RECONCILE_OPS_CONFIG} if b["kind"] == "full" else {})
        for t, b in sorted(newest.items())
    ]
    return requests or SkipReason(f"{len(committed)} committed import batch(es), none to sync")
