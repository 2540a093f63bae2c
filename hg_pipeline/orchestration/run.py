"""Running a sync for one tenant in this process (the `hg-pipeline sync` command)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from dagster import DagsterInstance
from sqlalchemy import Engine, update

from hg_pipeline.orchestration.home import dagster_instance
from hg_pipeline.orchestration.jobs import JOBS_BY_KIND, NIGHTLY_OPS_CONFIG, sync_tags
from hg_pipeline.orchestration.outcomes import applied_mapping_version, read_events
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import PsaResource, psa_resource, warehouse_resource
from hg_pipeline.warehouse import db, locks
from hg_pipeline.warehouse.tables import sync_runs
from hg_pipeline.warehouse.tenants import get_tenant

@dataclass
class SyncOutcome:
    tenant_id: str
    kind: str
    run_id: str
    success: bool
    seconds: float
    failed_step: str | None = None
    reason: str | None = None
    stages: dict[str, dict] = field(default_factory=dict)  # asset name -> materialization metadata


def run_sync(database_url: str, tenant_id: str, kind: str, *, instance: DagsterInstance | None = None,
             psa: PsaResource | None = None, log_level: str = "INFO") -> SyncOutcome:
    """Run the `kind` job ("initial", "full", "remap", "nightly") for one tenant and record it in sync_runs.

    Without `instance`, the instance of $DAGSTER_HOME is opened (and closed) for this run.
    """
    tenant = get_tenant(db.connect(database_url), tenant_id)  # unknown tenant -> TenantError before anything runs
    if instance is None:
        with dagster_instance() as opened:
            return run_sync(database_url, tenant_id, kind, instance=opened, psa=psa, log_level=log_level)
    from hg_pipeline.definitions import build_definitions

    engine = db.connect(database_url)
    if not instance.has_dynamic_partition(tenants_partitions.name, tenant_id):
        instance.add_dynamic_partitions(tenants_partitions.name, [tenant_id])
    defs = build_definitions({"warehouse": warehouse_resource(database_url), "psa": psa or psa_resource()})
    job = defs.resolve_job_def(JOBS_BY_KIND[kind].name)
    started = datetime.now(timezone.utc)
    run_id = str(uuid.uuid4())
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if kind == "nightly":
        run_config["ops"] = NIGHTLY_OPS_CONFIG
    # Alive from before its row exists, so no sensor can take the row for a dead run's.
    with locks.held(engine, locks.run_alive_name(run_id)):
        with engine.begin() as conn:  # the row names the run from the start, so sensors find it
            sync_id = conn.execute(sync_runs.insert().values(
                tenant_id=tenant_id, kind=kind, status="running", started_at=started,
                dagster_run_id=run_id)).inserted_primary_key[0]
        result = job.execute_in_process(
            run_config=run_config, instance=instance, partition_key=tenant_id, raise_on_error=False,
            run_id=run_id, tags=sync_tags(tenant, kind),
        )
        story = read_events(result.all_events)
        outcome = SyncOutcome(tenant_id, kind, result.run_id, result.success,
                              (datetime.now(timezone.utc) - started).total_seconds(),
                              story.failed_step, story.reason, story.stages)
        _finish(engine, sync_id, outcome, story.numeric_stages())
    return outcome


def _finish(engine: Engine, sync_id: int, outcome: SyncOutcome, summary: dict) -> None:
    with engine.begin() as conn:
        conn.execute(update(sync_runs).where(sync_runs.c.id == sync_id).values(
            status="success" if outcome.success else "failure",
            finished_at=datetime.now(timezone.utc),
            summary=json.dumps(summary),
            mapping_version=applied_mapping_version(outcome.kind, summary) if outcome.success else None,
            error=None if outcome.success else f"{outcome.failed_step or 'run'}: {outcome.reason}",
        ))
