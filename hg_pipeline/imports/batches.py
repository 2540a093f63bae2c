"""Import batches: pushed records staged through the extract stage every source uses.

A batch is what one `hg-pipeline import` call or one API batch (POSTs, then a commit) brings.
Staging it (`stage_batch`) runs `extract.stage_pages` per entity, so quarantine, vanished
records, mapping, checks and loads work as for a PSA:

- a full batch is the whole truth for each entity it holds: a record of that entity missing
  from it is marked vanished, and the next sync soft-deletes it; entities it does not hold
  are left as they are;
- a partial batch (`--partial`, or `{"partial": true}` for the API) only upserts;
- types and categories are read from the records (company and contact `type`, product
  `category`) and staged as the reference lists the MSP maps.

Staging takes the tenant lock: never while a sync of the tenant runs, so a sync never maps
half of a batch. The `import_batches` sensor then starts the tenant's sync.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Engine, delete, func, insert, select, update

from hg_pipeline.extract import Reading, stage_pages
from hg_pipeline.imports.formats import IMPORT_ENTITIES
from hg_pipeline.imports.normalize import REFERENCES, normalize_checked, record_key, reference_records
from hg_pipeline.warehouse import locks
from hg_pipeline.warehouse.bulk import copy_rows, qualified
from hg_pipeline.warehouse.staging import json_text
from hg_pipeline.warehouse.tables import import_batches, import_records
from hg_pipeline.warehouse.tenants import TenantError, get_tenant

PAGE_SIZE = 5_000  # records per staged page (one COPY, one commit)
LOCK_WAIT_SECONDS = 600.0  # how long staging waits for a running sync of the tenant

# (entity) -> a fresh iterable of pages of typed records (`validate.check`); called once.
Pages = Callable[[], Iterable[list[dict]]]


class BatchError(ValueError):
    """The batch cannot be staged; the message is one line."""


@dataclass
class BatchResult:
    batch_id: int
    partial: bool
    staged: dict[str, int] = field(default_factory=dict)  # records received per entity
    vanished: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{count:,} {entity}" for entity, count in self.staged.items()]
        gone = [f"{count:,} {entity}" for entity, count in self.vanished.items() if count]
        text = f"batch {self.batch_id} staged ({'partial' if self.partial else 'full'}): {', '.join(parts) or 'nothing'}"
        return text + (f"; missing from it, to be soft-deleted: {', '.join(gone)}" if gone else "")


def require_import_tenant(engine: Engine, tenant_id: str):
    tenant = get_tenant(engine, tenant_id)
    if tenant.source != "import":
        raise TenantError(f"tenant {tenant_id} reads {tenant.source}, not import files or the import API "
                          "(source: import)")
    return tenant


def open_batch(engine: Engine, tenant_id: str, origin: str, partial: bool) -> int:
    with engine.begin() as conn:
        return conn.execute(insert(import_batches).values(
            tenant_id=tenant_id, origin=origin, status="open", partial=partial,
            created_at=datetime.now(timezone.utc)).returning(import_batches.c.batch_id)).scalar_one()


def batch_row(engine: Engine, tenant_id: str, batch_id: int) -> Mapping | None:
    """The batch, only if it is `tenant_id`'s."""
    with engine.connect() as conn:
        return conn.execute(select(import_batches).where(
            import_batches.c.batch_id == batch_id, import_batches.c.tenant_id == tenant_id)).mappings().first()


def land_records(engine: Engine, batch_id: int, entity: str, records: list[dict]) -> int:
    """Keep typed records of an open API batch until its commit; a record sent again (same
    entity and id) replaces the earlier one."""
    rows = {record_key(entity, record): record for record in records}
    with engine.begin() as conn:
        conn.execute(delete(import_records).where(
            import_records.c.batch_id == batch_id, import_records.c.entity == entity,
            import_records.c.psa_id.in_(list(rows))))
        copy_rows(conn, qualified(conn, import_records), ("batch_id", "entity", "psa_id", "payload"),
                  ((batch_id, entity, key, json_text(record)) for key, record in rows.items()))
    return len(rows)


def landed_counts(engine: Engine, batch_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(import_records.c.entity, func.count()).where(
            import_records.c.batch_id == batch_id).group_by(import_records.c.entity)).all()
    return {entity: int(count) for entity, count in rows}


def landed_pages(engine: Engine, batch_id: int, entity: str) -> Iterator[list[dict]]:
    """The landed records of `entity`, PAGE_SIZE at a time (keyset on the id)."""
    after = ""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(select(import_records.c.psa_id, import_records.c.payload).where(
                import_records.c.batch_id == batch_id, import_records.c.entity == entity,
                import_records.c.psa_id > after).order_by(import_records.c.psa_id).limit(PAGE_SIZE)).all()
        if not rows:
            return
        yield [json.loads(payload) for _, payload in rows]
        after = rows[-1][0]


def commit_landed(engine: Engine, tenant_id: str, batch_id: int) -> BatchResult:
    """Stage what an API batch collected, then forget it; a batch is committed once."""
    row = batch_row(engine, tenant_id, batch_id)
    if row is None:
        raise BatchError(f"tenant {tenant_id} has no import batch {batch_id}")
    if row["status"] != "open":
        raise BatchError(f"import batch {batch_id} is {row['status']}, not open")
    entities = landed_counts(engine, batch_id)
    sources = {entity: (lambda e=entity: landed_pages(engine, batch_id, e)) for entity in entities}
    result = stage_batch(engine, tenant_id, sources, partial=row["partial"], batch_id=batch_id)
    with engine.begin() as conn:
        conn.execute(delete(import_records).where(import_records.c.batch_id == batch_id))
    return result


def stage_batch(engine: Engine, tenant_id: str, sources: Mapping[str, Pages], *, partial: bool,
                origin: str = "files", batch_id: int | None = None,
                refusal: Callable[[], Exception | None] = lambda: None) -> BatchResult:
    """Stage every entity of `sources` as one batch, under the tenant lock.

    Each entity's pages go first into the extraction under way (`raw_inflight`, where no map
    stage reads), checked as they stream by; `refusal()` is then asked whether the checks found
    anything: if so, everything read is discarded and that exception raised (nothing staged);
    else every entity is merged into staging."""
    if batch_id is None:
        batch_id = open_batch(engine, tenant_id, origin, partial)
    _set_status(engine, batch_id, "staging")
    result = BatchResult(batch_id, partial)
    run_id = f"import-batch-{batch_id}"
    try:
        with locks.held(engine, locks.tenant_lock_name(tenant_id), wait_seconds=LOCK_WAIT_SECONDS):
            readings = [_read(engine, tenant_id, entity, sources[entity], partial, run_id)
                        for entity in IMPORT_ENTITIES if entity in sources]
            refused = refusal()
            if refused is not None:
                for reading, _ in readings:
                    reading.discard()
                raise refused
            for reading, names in readings:
                _merge(engine, tenant_id, reading, names, partial, run_id, result)
    except locks.LockBusy:
        _set_status(engine, batch_id, "failed", error="a sync of the tenant kept running")
        raise BatchError(f"tenant {tenant_id}: a sync has been running for over {LOCK_WAIT_SECONDS:.0f} s; "
                         "import again when it ends") from None
    except Exception as exc:
        _set_status(engine, batch_id, "failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    _set_status(engine, batch_id, "committed", counts=result.staged)
    return result


def _read(engine: Engine, tenant_id: str, entity: str, pages: Pages, partial: bool,
          run_id: str) -> tuple[Reading, set[str]]:
    """The entity's pages in the extraction under way, and the type or category names they use."""
    reference = REFERENCES.get(entity)
    names: set[str] = set()

    def noting(source: Iterable[list[dict]]) -> Iterator[list[dict]]:
        for page in source:
            if reference:
                names.update(record[reference[1]] for record in page if record.get(reference[1]))
            yield page

    reading = Reading.pushed(engine, tenant_id, entity, run_id, full=not partial)
    reading.stage(noting(pages()), normalize_checked, _payload_id(entity))
    return reading, names


def _merge(engine: Engine, tenant_id: str, reading: Reading, names: set[str], partial: bool, run_id: str,
           result: BatchResult) -> None:
    entity = reading.entity
    staged = reading.merge(None)
    result.staged[entity] = staged.counts.received
    result.vanished[entity] = staged.counts.vanished
    reference = REFERENCES.get(entity)
    if reference:
        ref_entity = reference[0]
        staged = stage_pages(engine, tenant_id, ref_entity, [reference_records(ref_entity, names)],
                             lambda _entity, record: record, lambda record: record.get("psa_id"), run_id,
                             full=not partial)
        result.staged[ref_entity] = staged.counts.received


def _payload_id(entity: str) -> Callable[[object], str | None]:
    return lambda record: record_key(entity, record) if isinstance(record, Mapping) else None


def _set_status(engine: Engine, batch_id: int, status: str, *, error: str | None = None,
                counts: dict | None = None) -> None:
    values: dict = {"status": status, "error": error}
    if counts is not None:
        values["counts"] = json.dumps(counts)
    if status == "committed":
        values["committed_at"] = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(update(import_batches).where(import_batches.c.batch_id == batch_id).values(**values))


def committed_batches(engine: Engine, after: int = 0) -> list[Mapping]:
    """Committed batches with a batch id above `after`, oldest first (what the sensor syncs)."""
    with engine.connect() as conn:
        return list(conn.execute(select(import_batches).where(
            import_batches.c.status == "committed", import_batches.c.batch_id > after,
        ).order_by(import_batches.c.batch_id)).mappings())


def staged_summary(engine: Engine, tenant_id: str, entity: str) -> dict:
    """What an import tenant's extract stage reports: nothing is read, this is what is staged."""
    from hg_pipeline.warehouse.staging import live_staged_count

    with engine.connect() as conn:
        live = live_staged_count(conn, tenant_id, entity)
        last = conn.execute(select(import_batches.c.batch_id, import_batches.c.committed_at).where(
            import_batches.c.tenant_id == tenant_id, import_batches.c.status == "committed",
        ).order_by(import_batches.c.batch_id.desc()).limit(1)).first()
    return {"mode": "pushed", "received": live,
            "last_batch": f"{last[0]} committed {last[1]:%Y-%m-%d %H:%M:%S} UTC" if last else "none yet"}
