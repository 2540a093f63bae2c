"""What every run that writes a tenant's data does first and last, however it was launched
(CLI, UI, sensor, schedule, backfill, `dg launch`):

1. hold its **run-alive lock** for its whole life (a `sync_runs` row still `running` whose
   alive lock is free belongs to a dead process);
2. carry the tags `hg/tenant`, `hg/kind` and, when it calls a PSA, `hg/psa_host`;
3. take the **tenant lock**, waiting a bounded time, else fail with one line naming the
   run that holds it;
4. mark the tenant's abandoned runs failed (`sync_runs` and Dagster), now that no other
   sync of the tenant can be running;
5. have its `sync_runs` row.

`WarehouseResource` calls `enter_run` when a run initializes it and `leave_run` at the
end (the in-process executor initializes resources once per run), so no asset has to
remember it. `sweep_abandoned` is also run by the `abandoned_runs` sensor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, Failure
from sqlalchemy import Engine, select, update

from hg_pipeline.orchestration.jobs import JOBS_BY_KIND, KIND_TAG, TENANT_TAG, sync_tags
from hg_pipeline.warehouse import locks
from hg_pipeline.warehouse.bulk import utc
from hg_pipeline.warehouse.tables import sync_runs
from hg_pipeline.warehouse.tenants import TenantError, get_tenant

PARTITION_TAG = "dagster/partition"
KIND_BY_JOB = {job.name: kind for kind, job in JOBS_BY_KIND.items()}
ABANDONED = "abandoned: the process running this sync stopped (killed or lost) before it finished"
# A row younger than this is left alone: its process may not have taken its alive lock yet.
ABANDON_GRACE = timedelta(seconds=60)
SETTLE_SECONDS = 2.0
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def run_kind(run: DagsterRun) -> str | None:
    """initial | full | remap | nightly for a run of this pipeline; None for anything else.

    An ad-hoc asset selection (UI "Materialize", `dg launch --assets`) is a `full` sync when
    it extracts from the PSA and a `remap` when it only maps and loads."""
    kind = run.tags.get(KIND_TAG) or KIND_BY_JOB.get(run.job_name)
    if kind:
        return kind
    if run.asset_selection is None:
        return None
    names = [key.to_user_string() for key in run.asset_selection]
    return "full" if any(name.endswith("_raw") for name in names) else "remap"


def run_tenant(run: DagsterRun) -> str | None:
    return run.tags.get(TENANT_TAG) or run.tags.get(PARTITION_TAG)


def missing_tags(engine: Engine, run: DagsterRun) -> dict[str, str]:
    """The hg/* tags a tenant run should carry and does not (PSA host read from the tenant)."""
    tenant_id, kind = run_tenant(run), run_kind(run)
    if not tenant_id or not kind:
        return {}
    try:
        wanted = sync_tags(get_tenant(engine, tenant_id), kind)
    except TenantError:
        wanted = {TENANT_TAG: tenant_id, KIND_TAG: kind}
    return {key: value for key, value in wanted.items() if key not in run.tags}


@dataclass(frozen=True)
class RunHold:
    """What a run holds while it runs."""

    tenant_id: str
    run_id: str


def enter_run(instance: DagsterInstance, engine: Engine, run: DagsterRun, *, wait_seconds: float) -> RunHold | None:
    """Steps 1 to 5 above; None for a run that is no tenant sync. Raises `Failure` (one line)
    when the tenant lock stays busy."""
    tenant_id, kind = run_tenant(run), run_kind(run)
    if not tenant_id or not kind:
        return None
    locks.acquire(engine, locks.run_alive_name(run.run_id))
    try:
        tags = missing_tags(engine, run)
        if tags:
            instance.add_run_tags(run.run_id, tags)
        try:
            locks.acquire(engine, locks.tenant_lock_name(tenant_id), wait_seconds=wait_seconds)
        except locks.LockBusy:
            raise Failure(description=f"tenant {tenant_id}: {_holder(engine, tenant_id, run.run_id)} "
                                      f"(waited {wait_seconds:g} s); try again when it ends") from None
        sweep_abandoned(instance, engine, tenant_id=tenant_id, now_running=run.run_id)
        _ensure_row(instance, engine, tenant_id, kind, run.run_id)
    except BaseException:
        locks.release(engine, locks.run_alive_name(run.run_id))
        raise
    return RunHold(tenant_id, run.run_id)


def leave_run(engine: Engine, hold: RunHold | None) -> None:
    if hold is None:
        return
    locks.release(engine, locks.tenant_lock_name(hold.tenant_id))
    locks.release(engine, locks.run_alive_name(hold.run_id))


def lock_lost(engine: Engine, hold: RunHold | None) -> str | None:
    """Why `hold` no longer holds its tenant lock (its session died in an outage), else None."""
    if hold is None or locks.still_held(engine, locks.tenant_lock_name(hold.tenant_id)):
        return None
    return ("the tenant lock was lost (the warehouse connection holding it dropped), so another sync "
            "could be running; nothing loaded, run the sync again")


def _holder(engine: Engine, tenant_id: str, run_id: str) -> str:
    """'a full sync of acme is already running (dagster run ...)' for the run holding the lock."""
    with engine.connect() as conn:
        rows = conn.execute(select(sync_runs.c.kind, sync_runs.c.dagster_run_id).where(
            sync_runs.c.tenant_id == tenant_id, sync_runs.c.status == "running",
            sync_runs.c.dagster_run_id != run_id).order_by(sync_runs.c.started_at)).all()
    for kind, other in rows:
        if other and locks.is_held_elsewhere(engine, locks.run_alive_name(other)):
            return f"a{'n' if kind == 'initial' else ''} {kind} sync of {tenant_id} is already running (dagster run {other})"
    return f"another sync of {tenant_id} is already running"


def _ensure_row(instance: DagsterInstance, engine: Engine, tenant_id: str, kind: str, run_id: str) -> None:
    with engine.begin() as conn:
        exists = conn.scalar(select(sync_runs.c.id).where(sync_runs.c.dagster_run_id == run_id))
        if exists is None:
            record = instance.get_run_record_by_id(run_id)
            started = (datetime.fromtimestamp(record.start_time, tz=timezone.utc)
                       if record is not None and record.start_time else datetime.now(timezone.utc))
            conn.execute(sync_runs.insert().values(tenant_id=tenant_id, kind=kind, status="running",
                                                   started_at=started, dagster_run_id=run_id))


def sweep_abandoned(instance: DagsterInstance, engine: Engine, *, tenant_id: str | None = None,
                    now_running: str | None = None, log=None) -> list[str]:
    """Mark failed every `running` sync whose process is gone; returns their Dagster run ids.

    A run is gone when its alive lock is free and Dagster does not know it as finished. Its row gets status failure with reason
    `abandoned`; its Dagster run, if still not finished, is reported failed, which makes
    the `sync_failed` sensor send the failure e-mail once (and the overdue sensor skip it).
    A `running` row whose run did finish (its process lost the warehouse before it could write
    the row) gets the run's real outcome, as the run status sensors record it.
    """
    cutoff = datetime.now(timezone.utc) - ABANDON_GRACE
    query = select(sync_runs.c.id, sync_runs.c.dagster_run_id, sync_runs.c.started_at).where(
        sync_runs.c.status == "running")
    if tenant_id is not None:
        query = query.where(sync_runs.c.tenant_id == tenant_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    abandoned = []
    for row_id, run_id, started in rows:
        if run_id == now_running:
            continue
        # With the tenant lock held, no other sync of the tenant runs: no grace needed.
        young = tenant_id is None and utc(started) > cutoff
        if young or (run_id and locks.is_held_elsewhere(engine, locks.run_alive_name(run_id))):
            continue
        run = instance.get_run_by_id(run_id) if run_id else None
        if run is not None and run.status not in FINISHED:
            # A run worker lets go of its locks when its resources tear down, a moment before it
            # reports its end: give that moment before calling it dead.
            time.sleep(SETTLE_SECONDS)
            run = instance.get_run_by_id(run_id) or run
        if run is not None and run.status in FINISHED:
            # It ended, but its process could not record how (the warehouse was gone): record it
            # from its events, as the run status sensors would (the first to write wins, alike).
            from hg_pipeline.orchestration.notify import record_finished_run  # notify imports this module

            record_finished_run(instance, engine, run, log=log)
            continue
        with engine.begin() as conn:
            done = conn.execute(update(sync_runs).where(sync_runs.c.id == row_id, sync_runs.c.status == "running")
                                .values(status="failure", finished_at=datetime.now(timezone.utc),
                                        error=f"run: {ABANDONED}")).rowcount
        if not done:
            continue
        if run is not None:
            instance.report_run_failed(run, message=ABANDONED)
        abandoned.append(run_id or f"sync_runs row {row_id}")
        if log:
            log.warning(f"sync run {run_id} marked failed: {ABANDONED}")
    return abandoned


def is_alive(engine: Engine, run_id: str) -> bool:
    return locks.is_held_elsewhere(engine, locks.run_alive_name(run_id))
