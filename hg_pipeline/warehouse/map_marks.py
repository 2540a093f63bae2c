"""How far the mapping of each loaded entity has read staging: what the nightly's delta map
starts from.

A map stage notes the latest staging change it saw (`staged_through`: the newest
`last_seen_at` or `vanished_at` of the entity), the mapping version it applied and a key of
the company decisions it depended on (`upstream_key`); the load stores that note in its
commit (`store_mark`), so a map whose load failed is mapped again. The next nightly maps only
the records staged or vanished after the mark (`staged_changes`), when nothing else a
decision depends on has changed (see `orchestration/mapping_stage.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, bindparam, func, select, text, update
from sqlalchemy.types import NullType

from hg_pipeline.warehouse.bulk import utc
from hg_pipeline.warehouse.staging import first_read_under_way
from hg_pipeline.warehouse.tables import map_marks, raw_records


@dataclass(frozen=True)
class MapMark:
    mapping_version: int | None
    staged_through: datetime | None  # None: nothing staged when it was mapped
    upstream_key: str  # "" for an entity that depends on no other's decisions


@dataclass(frozen=True)
class StagedChanges:
    changed: list[str]  # live records staged (new, changed, back) after the mark
    gone: list[str]  # records that vanished after the mark
    live: int  # live staged records of the entity


def upstream_key(items: Iterable[tuple]) -> str:
    """A digest of the decisions another entity's mapping reads (sorted: order does not matter)."""
    digest = hashlib.sha256()
    for text in sorted(repr(item) for item in items):
        digest.update(text.encode())
    return digest.hexdigest()


def read_mark(engine: Engine, tenant_id: str, entity: str) -> MapMark | None:
    with engine.connect() as conn:
        row = conn.execute(select(map_marks.c.mapping_version, map_marks.c.staged_through, map_marks.c.upstream_key)
                           .where(map_marks.c.tenant_id == tenant_id, map_marks.c.entity == entity)).first()
    return None if row is None else MapMark(row[0], utc(row[1]), row[2])


def staged_through(engine: Engine, tenant_id: str, entity: str) -> datetime | None:
    """The latest staging change of `entity`: what a map stage that reads staging now has seen."""
    t = raw_records
    with engine.connect() as conn:
        if first_read_under_way(conn, tenant_id, entity):
            return None
        seen, vanished = conn.execute(select(func.max(t.c.last_seen_at), func.max(t.c.vanished_at)).where(
            t.c.tenant_id == tenant_id, t.c.entity == entity)).one()
    moments = [utc(m) for m in (seen, vanished) if m is not None]
    return max(moments) if moments else None


def staged_changes(engine: Engine, tenant_id: str, entity: str, since: datetime | None) -> StagedChanges:
    """What staging of `entity` changed after `since` (None: since the beginning)."""
    t = raw_records
    scope = (t.c.tenant_id == tenant_id, t.c.entity == entity)
    with engine.connect() as conn:
        if first_read_under_way(conn, tenant_id, entity):
            return StagedChanges(changed=[], gone=[], live=0)
        live = conn.scalar(select(func.count()).select_from(t).where(*scope, t.c.vanished_at.is_(None)))
        query = select(t.c.psa_id, t.c.vanished_at).where(*scope)
        if since is not None:
            # Bound as staging writes its times (`merge_inflight`'s plain parameter): SQLite keeps
            # them as text with "+00:00", which a DateTime-typed parameter (no suffix) would sort
            # below, so every record staged at the mark's very moment would count as changed.
            moment = bindparam("since", since, type_=NullType())  # no DateTime processing: as the driver writes it
            query = query.where(text("(last_seen_at > :since OR vanished_at > :since)").bindparams(moment))
        rows = conn.execute(query).all()
    return StagedChanges(changed=[psa_id for psa_id, vanished in rows if vanished is None],
                         gone=[psa_id for psa_id, vanished in rows if vanished is not None], live=live)


def marked_at(engine: Engine, tenant_id: str) -> dict[str, datetime]:
    """entity -> when a load last stored its mark."""
    with engine.connect() as conn:
        rows = conn.execute(select(map_marks.c.entity, map_marks.c.updated_at).where(
            map_marks.c.tenant_id == tenant_id)).all()
    return {entity: utc(moment) for entity, moment in rows}


def store_mark(conn: Connection, tenant_id: str, entity: str, mark: MapMark) -> None:
    """In the load's transaction: the next delta map starts from `mark`."""
    values = {"mapping_version": mark.mapping_version, "staged_through": mark.staged_through,
              "upstream_key": mark.upstream_key, "updated_at": datetime.now(timezone.utc)}
    where = (map_marks.c.tenant_id == tenant_id, map_marks.c.entity == entity)
    if conn.execute(update(map_marks).where(*where).values(**values)).rowcount == 0:
        conn.execute(map_marks.insert(), {"tenant_id": tenant_id, "entity": entity, **values})
