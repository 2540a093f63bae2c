"""The schedules: every night one sync per tenant partition, tagged with its PSA host.

Monday to Saturday at 02:00 UTC `nightly_resync` reads only what changed; on Sunday at the
same hour `weekly_reconcile` reads everything (a `full` sync) instead, so each tenant gets
exactly one sync a night. The full read catches what an incremental one cannot see: a
ConnectWise merge sets `deletedFlag` on the merged-away record without touching `lastUpdated`.
The reconcile also maps every record again (a user's full sync maps what changed), so every
decision is derived again by the code in force once a week.

The queued run coordinator (dagster.yaml, `concurrency.runs.tag_concurrency_limits`) runs
at most one run per distinct `hg/psa_host` value at a time, so the tenants of one PSA
instance never add up past its rate limit; tenants on different hosts run side by side.
"""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule
from sqlalchemy import Engine

from hg_pipeline.connectors.registry import source
from hg_pipeline.orchestration.jobs import (
    NIGHTLY_OPS_CONFIG, RECONCILE_OPS_CONFIG, full_sync_job, nightly_resync_job, sync_tags,
)
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.warehouse.mappings import current_mapping
from hg_pipeline.warehouse.tenants import Tenant, list_tenants

def ready_tenants(context: ScheduleEvaluationContext, engine: Engine) -> tuple[list[Tenant], list[str]]:
    """The tenants a scheduled sync reads from their PSA, and each other tenant with the reason
    it is left out (no partition yet, import tenant, no mapping yet)."""
    partitions = set(context.instance.get_dynamic_partitions(tenants_partitions.name))
    ready, skipped = [], []
    for tenant in list_tenants(engine):
        if tenant.tenant_id not in partitions:
            skipped.append(f"{tenant.tenant_id} (no partition yet)")
        elif source(tenant.source).pushed:
            skipped.append(f"{tenant.tenant_id} (import tenant: no PSA to resync)")
        elif current_mapping(engine, tenant.tenant_id) is None:
            skipped.append(f"{tenant.tenant_id} (no mapping yet)")
        else:
            ready.append(tenant)
    return ready, skipped


def _tenant_syncs(context: ScheduleEvaluationContext, warehouse: WarehouseResource, *, kind: str,
                  key_prefix: str, ops_config: dict, what: str) -> list[RunRequest] | SkipReason:
    """One `kind` sync per ready tenant, with a run key unique per tenant and day."""
    ready, skipped = ready_tenants(context, warehouse.engine())
    day = (context.scheduled_execution_time or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    requests = [RunRequest(run_key=f"{key_prefix}-{tenant.tenant_id}-{day}", partition_key=tenant.tenant_id,
                           run_config={"ops": ops_config}, tags=sync_tags(tenant, kind))
                for tenant in ready]
    if skipped:
        context.log.info(f"no {what}: " + ", ".join(skipped))
    return requests or SkipReason(f"no tenant is ready for a {what}"
                                  + (": " + ", ".join(skipped) if skipped else ""))


@schedule(
    name="nightly_resync",
    cron_schedule="0 2 * * 1-6",
    execution_timezone="UTC",
    job=nightly_resync_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Monday to Saturday at 02:00 UTC: one incremental resync per tenant that has a mapping, "
                "at most one run per PSA host at a time (tag hg/psa_host). Sunday is weekly_reconcile's.",
)
def nightly_resync_schedule(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
    return _tenant_syncs(context, warehouse, kind="nightly", key_prefix="nightly",
                         ops_config=NIGHTLY_OPS_CONFIG, what="nightly resync")


@schedule(
    name="weekly_reconcile",
    cron_schedule="0 2 * * 0",
    execution_timezone="UTC",
    job=full_sync_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Sunday at 02:00 UTC, in place of the nightly resync: one full sync per tenant that has a "
                "mapping (catches what incremental reads miss, e.g. merged ConnectWise records) that maps "
                "every record again; at most one run per PSA host at a time (tag hg/psa_host).",
)
def weekly_reconcile_schedule(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
    return _tenant_syncs(context, warehouse, kind="full", key_prefix="reconcile",
                         ops_config=RECONCILE_OPS_CONFIG, what="weekly reconcile")
