"""Mapping document versions (contract section 3): the newest version is in force.

Every version keeps why it exists (`comment`: "rollback to version 2", "forced: ...") and,
when it was stored knowingly over the import guard (`--force`), how many rows per entity
the operator accepted to soft-delete by mapping (`accepted_deletions`): the
`soft_delete_volume` check lets that many pass while the version is in force.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Engine, func, select

from hg_pipeline.warehouse.bulk import utc
from hg_pipeline.warehouse.tables import mapping_versions

COMMENT_LENGTH = 200  # mapping_versions.comment


@dataclass(frozen=True)
class StoredMapping:
    tenant_id: str
    version: int
    document: str
    created_at: datetime
    comment: str | None = None
    accepted_deletions: dict[str, int] = field(default_factory=dict)  # entity -> rows


def store_mapping(engine: Engine, tenant_id: str, document: str, *, comment: str | None = None,
                  accepted_deletions: dict[str, int] | None = None) -> StoredMapping:
    """Store `document` (already validated) as the tenant's next version."""
    now = datetime.now(timezone.utc)
    accepted = {entity: n for entity, n in (accepted_deletions or {}).items() if n}
    if comment is not None and len(comment) > COMMENT_LENGTH:
        comment = comment[: COMMENT_LENGTH - 3] + "..."
    with engine.begin() as conn:
        current = conn.scalar(
            select(func.max(mapping_versions.c.version)).where(mapping_versions.c.tenant_id == tenant_id)
        )
        version = (current or 0) + 1
        conn.execute(mapping_versions.insert(), {
            "tenant_id": tenant_id, "version": version, "document": document, "created_at": now,
            "comment": comment, "accepted_deletions": json.dumps(accepted, sort_keys=True) if accepted else None,
        })
    return StoredMapping(tenant_id, version, document, now, comment, accepted)


def current_mapping(engine: Engine, tenant_id: str) -> StoredMapping | None:
    """The version in force (the newest), or None."""
    rows = _read(engine, tenant_id, newest_only=True)
    return rows[0] if rows else None


def mapping_version(engine: Engine, tenant_id: str, version: int) -> StoredMapping | None:
    rows = _read(engine, tenant_id, version=version)
    return rows[0] if rows else None


def mapping_history(engine: Engine, tenant_id: str) -> list[StoredMapping]:
    """Every version of the tenant, oldest first; the last one is in force."""
    return _read(engine, tenant_id)


def _read(engine: Engine, tenant_id: str, *, version: int | None = None,
          newest_only: bool = False) -> list[StoredMapping]:
    t = mapping_versions
    query = select(t).where(t.c.tenant_id == tenant_id)
    if version is not None:
        query = query.where(t.c.version == version)
    query = query.order_by(t.c.version.desc()).limit(1) if newest_only else query.order_by(t.c.version)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [_stored(row) for row in rows]


def _stored(row) -> StoredMapping:
    created = utc(row["created_at"])
    accepted = json.loads(row["accepted_deletions"]) if row["accepted_deletions"] else {}
    return StoredMapping(row["tenant_id"], row["version"], row["document"], created, row["comment"], accepted)


def latest_versions(engine: Engine) -> dict[str, int]:
    """tenant_id -> newest mapping version, for the mapping-change sensor."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(mapping_versions.c.tenant_id, func.max(mapping_versions.c.version))
            .group_by(mapping_versions.c.tenant_id)
        ).all()
    return {tenant_id: version for tenant_id, version in rows}
