"""The nightly schedule: one incremental resync per tenant partition, tagged with its PSA host.

The queued run coordinator (dagster.yaml, `concurrency.runs.tag_concurrency_limits`) runs
at most one run per distinct `hg/psa_host` value at a time, so the tenants of one PSA
instance never add up past its rate limit; tenants on different hosts run side by side.
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from hg_pipeline.orchestration.jobs import KIND_TAG, NIGHTLY_OPS_CONFIG, TENANT_TAG, nightly_resync_job
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.warehouse.mappings import current_mapping
from hg_pipeline.warehouse.tenants import Tenant, list_tenants

PSA_HOST_TAG = "hg/psa_host"
DEFAULT_PORTS = {"http": 80, "https": 443}


def psa_host(base_url: str | None) -> str | None:
    """'host:port' of a PSA base URL (the unit its rate limit applies to); None without a URL."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number
        port = None
    return f"{parts.hostname.lower()}:{port}" if port else parts.hostname.lower()


def sync_tags(tenant: Tenant, kind: str) -> dict[str, str]:
    """Tags of a tenant's sync run: tenant, kind and, when it calls a PSA, the PSA host."""
    tags = {TENANT_TAG: tenant.tenant_id, KIND_TAG: kind}
    host = psa_host(tenant.base_url)
    if host and kind != "remap":  # a remap reads staging only: no PSA call to limit
        tags[PSA_HOST_TAG] = host
    return tags


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
