"""Run status sensors: the tenant's e-mails (spec §6) and `sync_runs` for runs Dagster launches.

    sync_started     STARTED   -> a `running` row in sync_runs
    sync_succeeded   SUCCESS   -> row finished; "data ready to map" (initial) or "sync completed"
    sync_failed      FAILURE   -> row finished; "sync failed" with the failing step and a reason
    sync_canceled    CANCELED  -> row finished (no e-mail)
    sync_overdue     (a plain sensor) a run STARTED longer than HG_SYNC_OVERDUE_HOURS ago
                     -> "sync overdue", once per run (the cursor lists the runs already told)

A sync run is a run of one of the four sync jobs (or tagged `hg/kind`) for one tenant
(`hg/tenant`, else its partition key). Each run status sensor sees each run once: Dagster
keeps its cursor on the run-status event log. The sensors watch every code location
(`monitor_all_code_locations=True`) so that `hg-pipeline sync`, which executes in its own
process without a code location, is e-mailed about too; the job filter above keeps them
to this pipeline's runs.

`hg-pipeline sync` writes its own sync_runs row (dagster_run_id set when it ends); these
sensors leave such a run alone and only write rows for runs no one else records (UI,
sensors, the schedule, backfills). Rows are keyed by dagster_run_id: a second look at
the same run updates its row, never adds one.

No e-mail failure escapes: `notifications.email.send` retries, logs and returns False.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRecord,
    RunsFilter,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from hg_pipeline.connectors.credentials import resolve_credentials
from hg_pipeline.secrets import scrub
from hg_pipeline.entities import LOADED_ENTITIES, STAGED_ENTITIES
from hg_pipeline.notifications import (
    SmtpSettings,
    ready_to_map,
    redact,
    send,
    sync_completed,
    sync_failed,
    sync_overdue,
)
from hg_pipeline.orchestration.jobs import JOBS_BY_KIND
from hg_pipeline.orchestration.outcomes import applied_mapping_version, read_events
from hg_pipeline.orchestration.run_guard import is_alive, run_kind, run_tenant, sweep_abandoned
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.warehouse.tables import sync_runs
from hg_pipeline.connectors.registry import source
from hg_pipeline.warehouse.tenants import Tenant, TenantError, get_tenant

OVERDUE_HOURS_VAR = "HG_SYNC_OVERDUE_HOURS"
DEFAULT_OVERDUE_HOURS = 8.0
MAPPING_URL_VAR = "HG_MAPPING_URL"  # optional, e.g. https://app.example/msp/{tenant}/mapping
# How long before the run's own start `hg-pipeline sync` may have written its row.
SMTP_TIMEOUT_SECONDS = 5  # per connection: a sensor evaluation has 60 s in all


# --------------------------------------------------------------------------- what a run is


@dataclass(frozen=True)
class SyncRun:
    """A Dagster run seen as a tenant's sync."""

    run_id: str
    tenant_id: str
    kind: str
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def seconds(self) -> float:
        if self.started_at and self.finished_at:
            return max(0.0, (self.finished_at - self.started_at).total_seconds())
        return 0.0


def sync_run_of(instance: DagsterInstance, run: DagsterRun, record: RunRecord | None = None) -> SyncRun | None:
    """The sync `run` is, or None when it is not a tenant sync of this pipeline."""
    kind, tenant_id = run_kind(run), run_tenant(run)
    if kind not in JOBS_BY_KIND or not tenant_id:
        return None
    record = record or instance.get_run_record_by_id(run.run_id)
    started = finished = None
    if record is not None:
        started = _utc(record.start_time) or record.create_timestamp.astimezone(timezone.utc)
        finished = _utc(record.end_time)
    return SyncRun(run.run_id, tenant_id, kind, started, finished)


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)


@dataclass
class RunReport:
    """What a run did, read from its events in the instance with `outcomes.read_events` (the
    reader the CLI runner uses): numeric metadata per asset (`<entity>_raw`, `<entity>_mapped`,
    `<entity>`) and, when it failed, the first failed step, its reason and the other failed steps."""

    stages: dict[str, dict[str, int | float]] = field(default_factory=dict)
    failed_step: str | None = None
    reason: str | None = None
    other_failed_steps: int = 0

    def stage(self, name: str) -> dict[str, int | float]:
        return self.stages.get(name, {})

    @property
    def received(self) -> dict[str, int]:
        return {e: int(self.stage(f"{e}_raw").get("received", 0)) for e in STAGED_ENTITIES if f"{e}_raw" in self.stages}

    @property
    def quarantined(self) -> int:
        """Records quarantined by any stage: extract (bad records) and map (unknown company)."""
        return sum(int(meta.get("quarantined", 0)) for meta in self.stages.values())

    @property
    def per_entity(self) -> dict[str, dict[str, int]]:
        """entity -> the columns of the completed e-mail, for entities the run mapped or loaded."""
        table = {}
        for entity in LOADED_ENTITIES:
            mapped, loaded = self.stage(f"{entity}_mapped"), self.stage(entity)
            if not mapped and not loaded:
                continue
            table[entity] = {
                "loaded": int(loaded.get("rows", 0)),
                **{k: int(loaded.get(k, 0)) for k in ("inserted", "updated", "soft_deleted")},
                **{k: int(mapped.get(k, 0)) for k in ("pending", "ignored")},
            }
        return table

    def failure(self, run_failure_message: str | None) -> tuple[str, str]:
        """(failing step, one-line reason); the run itself when no step failed (e.g. its worker died)."""
        if self.failed_step is None:
            return "run", _first_line(run_failure_message or "the run failed before any step ran")
        step = self.failed_step
        if self.other_failed_steps:
            n = self.other_failed_steps
            step += f" (and {n} other step{'s' if n > 1 else ''})"
        return step, _first_line(self.reason or "the step failed")


_REPORTED_EVENTS = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION,
                    DagsterEventType.STEP_FAILURE}


def read_run(instance: DagsterInstance, run_id: str) -> RunReport:
    events = [entry.dagster_event for entry in instance.all_logs(run_id, of_type=_REPORTED_EVENTS)
              if entry.dagster_event is not None]
    story = read_events(events)
    failed = {e.step_key for e in events if e.event_type == DagsterEventType.STEP_FAILURE}
    return RunReport(
        stages=story.numeric_stages(),
        failed_step=story.failed_step,
        reason=story.reason,
        other_failed_steps=len(failed - {story.failed_step}),
    )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else "(no reason given)"


# --------------------------------------------------------------------------- sync_runs


def record_sync_run(engine: Engine, sync: SyncRun, status: str, *, summary: dict | None = None,
                    error: str | None = None, log=None) -> None:
    """Create or finish the sync_runs row of a run no one else records; idempotent by run id.

    A finished row (success, failure, canceled) is never changed again.
    """
    values = {"status": status}
    if status != "running":
        values["finished_at"] = sync.finished_at or datetime.now(timezone.utc)
        values["summary"] = scrub(json.dumps(summary or {}))
        values["error"] = None if error is None else scrub(error)
        if status == "success":
            values["mapping_version"] = applied_mapping_version(sync.kind, summary or {})
    with engine.begin() as conn:
        row = conn.execute(select(sync_runs.c.id, sync_runs.c.status).where(
            sync_runs.c.dagster_run_id == sync.run_id)).first()
    if row is None:
        try:
            with engine.begin() as conn:
                conn.execute(sync_runs.insert().values(
                    tenant_id=sync.tenant_id, kind=sync.kind, dagster_run_id=sync.run_id,
                    started_at=sync.started_at or datetime.now(timezone.utc), **values))
            return
        except IntegrityError:  # another sensor wrote it meanwhile (or the tenant is gone)
            with engine.connect() as conn:
                row = conn.execute(select(sync_runs.c.id, sync_runs.c.status).where(
                    sync_runs.c.dagster_run_id == sync.run_id)).first()
            if row is None:
                if log:
                    log.warning(f"could not record run {sync.run_id} of unknown tenant {sync.tenant_id!r}")
                return
    if row.status != "running" or status == "running":
        return
    with engine.begin() as conn:
        conn.execute(update(sync_runs).where(sync_runs.c.id == row.id, sync_runs.c.status == "running")
                     .values(**values))


def record_finished_run(instance: DagsterInstance, engine: Engine, run: DagsterRun, log=None) -> bool:
    """Finish the sync_runs row of a run Dagster knows as finished, from its events, as the run
    status sensors do (without their e-mails). For a run whose own process could not (the
    warehouse was gone) when no sensor has yet; see `run_guard.sweep_abandoned`. False when
    `run` is no sync or not finished."""
    sync = sync_run_of(instance, run)
    status = {DagsterRunStatus.SUCCESS: "success", DagsterRunStatus.FAILURE: "failure",
              DagsterRunStatus.CANCELED: "canceled"}.get(run.status)
    if sync is None or status is None:
        return False
    report = read_run(instance, sync.run_id)
    error = None
    if status == "failure":
        ended = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
        _, reason = report.failure(ended[-1].message if ended else None)
        error = redact(f"{report.failed_step or 'run'}: {reason}", _tenant_secrets(engine, sync.tenant_id))
    elif status == "canceled":
        error = "canceled"
    record_sync_run(engine, sync, status, summary=report.stages, error=error, log=log)
    return True


# --------------------------------------------------------------------------- e-mail


def smtp_settings(log) -> SmtpSettings | None:
    try:
        settings = SmtpSettings.from_env()
    except ValueError as exc:
        log.error(f"notification e-mail off: {exc}")
        return None
    if settings is None:
        log.info("notification e-mail off: HG_SMTP_HOST is not set")
        return None
    return replace(settings, timeout=min(settings.timeout, SMTP_TIMEOUT_SECONDS))


def _recipient(engine: Engine, tenant_id: str, log) -> Tenant | None:
    try:
        tenant = get_tenant(engine, tenant_id)
    except TenantError:
        log.warning(f"tenant {tenant_id!r} is not in the warehouse: no e-mail")
        return None
    if not tenant.notify_email:
        log.info(f"tenant {tenant_id} has no notify_email: no e-mail")
        return None
    return tenant


def _tenant_secrets(engine: Engine, tenant_id: str) -> list[str]:
    """The tenant's secret values, to redact; none when they cannot be resolved here."""
    try:
        tenant = get_tenant(engine, tenant_id)
        return list(resolve_credentials(tenant.credentials, source(tenant.source).required_keys).values())
    except Exception:  # noqa: BLE001 - unknown tenant or missing env vars: nothing to redact
        return []


def mapping_hint(tenant_id: str) -> str:
    template = os.environ.get(MAPPING_URL_VAR, "").strip()
    if template:
        return template.replace("{tenant}", tenant_id)
    return f"`hg-pipeline mapping pending {tenant_id}` lists what to map; " \
           f"`hg-pipeline mapping import {tenant_id} FILE` saves the mapping"


def _deliver(engine: Engine, sync: SyncRun, build, log) -> None:
    """Build (tenant, settings) -> message and send it to the tenant; never raises."""
    try:
        tenant = _recipient(engine, sync.tenant_id, log)
        settings = smtp_settings(log) if tenant else None
        if tenant is None or settings is None:
            return
        message = build(tenant, settings)
        if send(message, settings, logger=log):
            log.info(f"sent {message['Subject']!r} to {tenant.notify_email}")
    except Exception as exc:  # noqa: BLE001 - an e-mail must never fail anything
        log.error(f"no e-mail for run {sync.run_id}: {type(exc).__name__}: {_first_line(str(exc))}")


# --------------------------------------------------------------------------- sensors

_RUN_SENSOR = dict(monitor_all_code_locations=True, default_status=DefaultSensorStatus.RUNNING,
                   minimum_interval_seconds=30)


@run_status_sensor(name="sync_started", run_status=DagsterRunStatus.STARTED,
                   description="Records every started sync run in sync_runs.", **_RUN_SENSOR)
def sync_started_sensor(context: RunStatusSensorContext, warehouse: WarehouseResource):
    sync = sync_run_of(context.instance, context.dagster_run)
    if sync is not None:
        record_sync_run(warehouse.engine(), sync, "running", log=context.log)


@run_status_sensor(name="sync_succeeded", run_status=DagsterRunStatus.SUCCESS,
                   description="Records the finished sync and e-mails the tenant: data ready to map "
                               "(initial sync) or sync completed (counts, quarantined, duration).",
                   **_RUN_SENSOR)
def sync_succeeded_sensor(context: RunStatusSensorContext, warehouse: WarehouseResource):
    sync = sync_run_of(context.instance, context.dagster_run)
    if sync is None:
        return
    engine = warehouse.engine()
    report = read_run(context.instance, sync.run_id)
    record_sync_run(engine, sync, "success", summary=report.stages, log=context.log)

    def build(tenant: Tenant, settings: SmtpSettings):
        if sync.kind == "initial":
            worklist = report.stage("mapping_worklist")  # what no rule covers yet, when the run made it
            waiting = {key: int(worklist[key]) for key in ("types_waiting", "records_waiting") if key in worklist}
            return ready_to_map(tenant.tenant_id, tenant.name, report.received, mapping_hint(tenant.tenant_id),
                                sender=settings.sender, to=tenant.notify_email, **waiting)
        return sync_completed(tenant.tenant_id, tenant.name, sync.kind, report.per_entity, report.quarantined,
                              sync.seconds, sender=settings.sender, to=tenant.notify_email)

    _deliver(engine, sync, build, context.log)


@run_failure_sensor(name="sync_failed",
                    description="Records the failed sync and e-mails the tenant the failing step and "
                                "a one-line reason (secrets redacted).",
                    **_RUN_SENSOR)
def sync_failed_sensor(context: RunFailureSensorContext, warehouse: WarehouseResource):
    sync = sync_run_of(context.instance, context.dagster_run)
    if sync is None:
        return
    engine = warehouse.engine()
    report = read_run(context.instance, sync.run_id)
    step, reason = report.failure(context.failure_event.message)
    secrets = _tenant_secrets(engine, sync.tenant_id)
    record_sync_run(engine, sync, "failure", summary=report.stages,
                    error=redact(f"{report.failed_step or 'run'}: {reason}", secrets), log=context.log)

    def build(tenant: Tenant, settings: SmtpSettings):
        return sync_failed(tenant.tenant_id, tenant.name, sync.kind, step, reason, sender=settings.sender,
                           to=tenant.notify_email, secrets=secrets)

    _deliver(engine, sync, build, context.log)


@run_status_sensor(name="sync_canceled", run_status=DagsterRunStatus.CANCELED,
                   description="Records canceled sync runs in sync_runs.", **_RUN_SENSOR)
def sync_canceled_sensor(context: RunStatusSensorContext, warehouse: WarehouseResource):
    sync = sync_run_of(context.instance, context.dagster_run)
    if sync is not None:
        record_sync_run(warehouse.engine(), sync, "canceled", error="canceled", log=context.log)


def overdue_hours(log=None) -> float:
    raw = os.environ.get(OVERDUE_HOURS_VAR, "").strip()
    if not raw:
        return DEFAULT_OVERDUE_HOURS
    try:
        hours = float(raw)
        if hours > 0:
            return hours
    except ValueError:
        pass
    if log:
        log.warning(f"{OVERDUE_HOURS_VAR}={raw!r} is not a positive number of hours; using {DEFAULT_OVERDUE_HOURS:g}")
    return DEFAULT_OVERDUE_HOURS


@sensor(name="sync_overdue", minimum_interval_seconds=300, default_status=DefaultSensorStatus.RUNNING,
        description="E-mails the tenant once about a sync running longer than HG_SYNC_OVERDUE_HOURS (default 8).")
def sync_overdue_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    hours = overdue_hours(context.log)
    now = datetime.now(timezone.utc)
    told = set(json.loads(context.cursor or "[]"))
    running = context.instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    still_running = {record.dagster_run.run_id for record in running}
    engine = warehouse.engine()
    newly_told = []
    for record in running:
        run = record.dagster_run
        if run.run_id in told:
            continue
        sync = sync_run_of(context.instance, run, record)
        if sync is None or sync.started_at is None or now - sync.started_at < timedelta(hours=hours):
            continue
        if not is_alive(engine, run.run_id):  # dead, not slow: `abandoned_runs` fails it instead
            continue

        def build(tenant: Tenant, settings: SmtpSettings, sync=sync):
            return sync_overdue(tenant.tenant_id, tenant.name, sync.kind, sync.started_at, hours,
                                sender=settings.sender, to=tenant.notify_email)

        _deliver(engine, sync, build, context.log)
        newly_told.append(run.run_id)
    # Remember only runs still running: a finished run can never be overdue again.
    context.update_cursor(json.dumps(sorted((told & still_running) | set(newly_told))))
    if not newly_told:
        return SkipReason(f"no sync running longer than {hours:g} h")
    return SkipReason(f"told the tenants about {len(newly_told)} overdue sync run(s): {', '.join(newly_told)}")


@sensor(name="abandoned_runs", minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Marks failed (reason: abandoned) every sync whose process died; the failure e-mail follows.")
def abandoned_runs_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    gone = sweep_abandoned(context.instance, warehouse.engine(), log=context.log)
    return SkipReason(f"marked {len(gone)} abandoned sync run(s) failed: {', '.join(gone)}" if gone
                      else "no abandoned sync run")


notification_sensors = [sync_started_sensor, sync_succeeded_sensor, sync_failed_sensor, sync_canceled_sensor,
                        sync_overdue_sensor, abandoned_runs_sensor]
