"""What `sync_runs` says about a tenant's past syncs, for the sensors that must not redo them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, select

from hg_pipeline.warehouse.tables import sync_runs


def tenants_with_reference_data(engine: Engine) -> set[str]:
    """Tenants whose reference data an initial, full or nightly sync brought (or is bringing):
    one that succeeded or is running, whoever launched it (CLI, demo, UI)."""
    with engine.connect() as conn:
        return set(conn.scalars(select(sync_runs.c.tenant_id).distinct().where(
            sync_runs.c.kind.in_(("initial", "full", "nightly")), sync_runs.c.status.in_(("success", "running")))))


def applied_versions(engine: Engine) -> dict[str, int]:
    """tenant_id -> the newest mapping version a successful full sync, remap or nightly resync applied."""
    with engine.connect() as conn:
        rows = conn.execute(select(sync_runs.c.tenant_id, func.max(sync_runs.c.mapping_version))
                            .where(sync_runs.c.status == "success", sync_runs.c.mapping_version.is_not(None))
                            .group_by(sync_runs.c.tenant_id)).all()
    return {tenant_id: version for tenant_id, version in rows}


def last_successes(engine: Engine) -> dict[tuple[str, str], datetime]:
    """(tenant_id, kind) -> when the newest successful sync of that kind started."""
    with engine.connect() as conn:
        rows = conn.execute(select(sync_runs.c.tenant_id, sync_runs.c.kind, func.max(sync_runs.c.started_at))
                            .where(sync_runs.c.status == "success")
                            .group_by(sync_runs.c.tenant_id, sync_runs.c.kind)).all()
    return {(tenant_id, kind): started for tenant_id, kind, started in rows}
