"""Mapping document versions (contract section 3): the newest version is in force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, func, select

from hg_pipeline.warehouse.tables import mapping_versions


@dataclass(frozen=True)
class StoredMapping:
    tenant_id: str
    version: int
    document: str
    created_at: datetime


def store_mapping(engine: Engine, tenant_id: str, document: str) -> StoredMapping:
    """Store `document` (already validated) as the tenant's next version."""
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        current = conn.scalar(
            select(func.max(mapping_versions.c.version)).where(mapping_versions.c.tenant_id == tenant_id)
        )
        version = (current or 0) + 1
        conn.execute(
            mapping_versions.insert(),
            {"tenant_id": tenant_id, "version": version, "document": document, "created_at": now},
        )
    return StoredMapping(tenant_id, version, document, now)


def current_mapping(engine: Engine, tenant_id: str) -> StoredMapping | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(mapping_versions)
            .where(mapping_versions.c.tenant_id == tenant_id)
            .order_by(mapping_versions.c.version.desc())
            .limit(1)
        ).mappings().first()
    if row is None:
        return None
    created = row["created_at"]
    if created.tzinfo is None:  # SQLite returns naive datetimes
        created = created.replace(tzinfo=timezone.utc)
    return StoredMapping(row["tenant_id"], row["version"], row["document"], created)


def latest_versions(engine: Engine) -> dict[str, int]:
    """tenant_id -> newest mapping version, for the mapping-change sensor."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(mapping_versions.c.tenant_id, func.max(mapping_versions.c.version))
            .group_by(mapping_versions.c.tenant_id)
        ).all()
    return {tenant_id: version for tenant_id, version in rows}
