"""The nightly schedule: one incremental resync per tenant partition, tagged with its PSA host.

The queued run coordinator (dagster.yaml, `concurrency.runs.tag_concurrency_limits`) runs
at most one run per distinct `hg/psa_host` value at a time, so the tenants of one PSA
instance never add up past its rate limit; tenants on different hosts run side by side.
"""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from hg_pipeline.orchestration.jobs import NIGHTLY_OPS_CONFIG, nightly_resync_job, sync_tags
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.warehouse.mappings import current_mapping
from hg_pipeline.warehouse.tenants import list_tenants

@schedule(
    name="nightly_resync",
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    job=nightly_resync_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00 UTC: one incremental resync per tenant that has a mapping, "
                "at most one run per PSA host at a time (tag hg/psa_host).",
)
def nightly_resync_schedule(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
    engine = warehouse.engine()
    partitions = set(context.instance.get_dynamic_partitions(tenants_partitions.name))
    day = (context.scheduled_execution_time or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    requests, skipped = [], []
    for tenant in list_tenants(engine):
        if tenant.tenant_id not in partitions:
            skipped.append(f"{tenant.tenant_id} (no partition yet)")
        elif tenant.source == "import":
            skipped.append(f"{tenant.tenant_id} (import tenant: no PSA to resync)")
        elif current_mapping(engine, tenant.tenant_id) is None:
            skipped.append(f"{tenant.tenant_id} (no mapping yet)")
        else:
            requests.append(RunRequest(
                run_key=f"nightly-{tenant.tenant_id}-{day}",
                partition_key=tenant.tenant_id,
                run_config={"ops": NIGHTLY_OPS_CONFIG},  # incremental extraction
                tags=sync_tags(tenant, "nightly"),
            ))
    if skipped:
        context.log.info("not resyncing: " + ", ".join(skipped))
    return requests or SkipReason("no tenant is ready for a nightly resync"
                                  + (": " + ", ".join(skipped) if skipped else ""))
