"""Running a sync for one tenant in this process (the `hg-pipeline sync` command).

A warehouse that stops answering never escapes as a traceback: `run_sync` raises
`outage.WarehouseUnreachable`, whose message is the command's one line. The Dagster run then ends
FAILURE; its `sync_runs` row is finished by this process when the warehouse comes back within
`FINISH_RETRY_SECONDS`, else it stays `running` with its run-alive lock gone (the lock dies
with its connection or this process), and the next sync of the tenant or the
`abandoned_runs` sensor records the run's outcome (`run_guard.sweep_abandoned`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from dagster import DagsterInstance, DagsterRunStatus
from sqlalchemy import Engine, update

from hg_pipeline import secrets
from hg_pipeline.orchestration.home import dagster_instance
from hg_pipeline.orchestration.jobs import JOBS_BY_KIND, OPS_CONFIG_BY_KIND, RECONCILE_OPS_CONFIG, remap_plan, sync_tags
from hg_pipeline.orchestration.mapping_stage import RemapReach, remap_reach
from hg_pipeline.orchestration.outcomes import applied_mapping_version, read_events
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import PsaResource, psa_resource, warehouse_resource
from hg_pipeline.warehouse import db, locks, outage
from hg_pipeline.warehouse.tables import sync_runs
from hg_pipeline.warehouse.tenants import get_tenant

FINISH_RETRY_SECONDS = 15.0  # how long a finished run waits for the warehouse to record it
ROLLED_BACK = "the sync's unfinished changes were rolled back"
NOTHING_DONE = "nothing was synced"


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
    reach: RemapReach | None = None  # a remap's: the entities it mapped again and those it left


def run_sync(database_url: str, tenant_id: str, kind: str, *, instance: DagsterInstance | None = None,
             psa: PsaResource | None = None, log_level: str = "INFO", reconcile: bool = False) -> SyncOutcome:
    """Run the `kind` job ("initial", "full", "remap", "nightly") for one tenant and record it in sync_runs.

    `reconcile` (a full sync): map every record again, as the weekly reconcile does, rather than
    what changed. Without `instance`, the instance of $DAGSTER_HOME is opened (and closed) for this run.
    """
    if reconcile and kind != "full":
        raise ValueError(f"only a full sync reconciles, not a {kind} sync")
    with outage.reported(tenant_id, database_url, NOTHING_DONE):
        tenant = get_tenant(db.connect(database_url), tenant_id)  # unknown tenant -> TenantError first
    if instance is None:
        with dagster_instance() as opened:
            return run_sync(database_url, tenant_id, kind, instance=opened, psa=psa, log_level=log_level,
                            reconcile=reconcile)
    from hg_pipeline.definitions import build_definitions

    engine = db.connect(database_url)
    if not instance.has_dynamic_partition(tenants_partitions.name, tenant_id):
        instance.add_dynamic_partitions(tenants_partitions.name, [tenant_id])
    defs = build_definitions({"warehouse": warehouse_resource(database_url), "psa": psa or psa_resource()})
    job = defs.resolve_job_def(JOBS_BY_KIND[kind].name)
    started = datetime.now(timezone.utc)
    run_id = str(uuid.uuid4())
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if kind in OPS_CONFIG_BY_KIND:
        run_config["ops"] = RECONCILE_OPS_CONFIG if reconcile else OPS_CONFIG_BY_KIND[kind]
    alive = locks.run_alive_name(run_id)
    # Alive from before its row exists, so no sensor can take the row for a dead run's.
    with outage.reported(tenant_id, database_url, NOTHING_DONE):
        reach, selection = None, None
        if kind == "remap":
            reach = remap_reach(engine, tenant_id)
            selection, run_config["ops"] = remap_plan(reach)
        locks.acquire(engine, alive)
        try:
            with engine.begin() as conn:  # the row names the run from the start, so sensors find it
                sync_id = conn.execute(sync_runs.insert().values(
                    tenant_id=tenant_id, kind=kind, status="running", started_at=started,
                    dagster_run_id=run_id)).inserted_primary_key[0]
        except BaseException:
            _release(engine, alive)
            raise
    try:
        with outage.reported(tenant_id, database_url, ROLLED_BACK):
            try:
                result = job.execute_in_process(
                    run_config=run_config, instance=instance, partition_key=tenant_id, raise_on_error=False,
                    run_id=run_id, tags=sync_tags(tenant, kind), asset_selection=selection,
                )
            except BaseException as exc:
                _end_failed(instance, run_id, exc)
                raise
        story = read_events(result.all_events)
        outcome = SyncOutcome(tenant_id, kind, result.run_id, result.success,
                              (datetime.now(timezone.utc) - started).total_seconds(),
                              story.failed_step, story.reason, story.stages, reach)
        consequence = ROLLED_BACK if not outcome.success else (
            f"the sync itself succeeded (dagster run {run_id}); its sync_runs row is finished when the "
            "warehouse returns")
        with outage.reported(tenant_id, database_url, consequence):
            _finish_patiently(engine, sync_id, outcome, story.numeric_stages())
    finally:
        _release(engine, alive)
    return outcome


def _end_failed(instance: DagsterInstance, run_id: str, exc: BaseException) -> None:
    """A run that an exception left unfinished is reported failed, so it never stays STARTED."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE,
                                              DagsterRunStatus.CANCELED):
        lines = str(exc).strip().splitlines()
        instance.report_run_failed(run, message=secrets.scrub(lines[0] if lines else type(exc).__name__))


def _release(engine: Engine, name: str) -> None:
    """Let go of a lock; when the warehouse is gone, so is the lock (it lived on a connection)."""
    try:
        locks.release(engine, name)
    except Exception as exc:
        if not outage.is_warehouse_error(exc):
            raise


def _finish_patiently(engine: Engine, sync_id: int, outcome: SyncOutcome, summary: dict,
                      patience: float = FINISH_RETRY_SECONDS) -> None:
    """`_finish`, tried again for `patience` seconds while the warehouse does not answer."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return _finish(engine, sync_id, outcome, summary)
        except Exception as exc:
            if not outage.is_unreachable(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def _finish(engine: Engine, sync_id: int, outcome: SyncOutcome, summary: dict) -> None:
    applied = None
    if outcome.success:
        # A remap applies the version in force to what it left too: their decisions are that version's.
        applied = outcome.reach.version if outcome.reach else applied_mapping_version(outcome.kind, summary)
    with engine.begin() as conn:
        conn.execute(update(sync_runs).where(sync_runs.c.id == sync_id).values(
            status="success" if outcome.success else "failure",
            finished_at=datetime.now(timezone.utc),
            summary=secrets.scrub(json.dumps(summary)),
            mapping_version=applied,
            error=None if outcome.success else secrets.scrub(f"{outcome.failed_step or 'run'}: {outcome.reason}"),
        ))
