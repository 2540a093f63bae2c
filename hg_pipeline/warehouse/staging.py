"""Raw PSA records kept in the warehouse, so that mapping and remaps need no PSA call."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select, text, update

from hg_pipeline.connectors.records import payload_id, payload_text, safe_text
from hg_pipeline.warehouse.bulk import copy_rows, create_temp_twin, distinct_from, index_temp, qualified, temp_ref
from hg_pipeline.warehouse.tables import extract_cursors, quarantine, raw_records

_COLUMNS = ("tenant_id", "entity", "psa_id", "payload", "record", "first_seen_at", "last_seen_at", "seen_run_id")


@dataclass
class StageCounts:
    received: int = 0
    new: int = 0
    changed: int = 0
    vanished: int = 0


class RawStager:
    """Streams one entity's pages into staging inside one transaction.

    `add(...)` appends a page to a temp table as it arrives; `finish(...)` merges it
    into `raw_records` and, after a full extraction, marks records the PSA no longer
    returned as vanished. Nothing is visible to other readers before the commit.
    """

    def __init__(self, conn: Connection, tenant_id: str, entity: str, run_id: str, now: datetime):
        self.conn, self.tenant_id, self.entity, self.run_id, self.now = conn, tenant_id, entity, run_id, now
        self.temp = f"incoming_raw_{entity}"
        self.counts = StageCounts()
        create_temp_twin(conn, raw_records, self.temp)

    def add(self, records: Iterable[tuple[str, dict, dict]]) -> None:
        """records: (psa_id, vendor payload, normalized record), checked by the connector
        (`connectors/records.py`); JSON is written as ASCII, so no NUL reaches a text column."""
        rows = (
            (self.tenant_id, self.entity, psa_id, json.dumps(payload, separators=(",", ":")),
             json.dumps(record, separators=(",", ":")), self.now, self.now, self.run_id)
            for psa_id, payload, record in records
        )
        self.counts.received += copy_rows(self.conn, temp_ref(self.conn, self.temp), _COLUMNS, rows)

    def finish(self, *, full: bool) -> StageCounts:
        index_temp(self.conn, self.temp, ("tenant_id", "entity", "psa_id"))
        conn, raw, tmp = self.conn, qualified(self.conn, raw_records), temp_ref(self.conn, self.temp)
        ne = distinct_from(conn)
        new, changed = conn.execute(text(
            f"SELECT COALESCE(SUM(CASE WHEN r.psa_id IS NULL THEN 1 ELSE 0 END), 0),"
            f" COALESCE(SUM(CASE WHEN r.psa_id IS NOT NULL AND (r.payload {ne} i.payload"
            f"   OR r.vanished_at IS NOT NULL) THEN 1 ELSE 0 END), 0)"
            f" FROM {tmp} i LEFT JOIN {raw} r ON r.tenant_id = i.tenant_id AND r.entity = i.entity"
            f" AND r.psa_id = i.psa_id"
        )).one()
        self.counts.new, self.counts.changed = int(new), int(changed)
        columns = ", ".join(_COLUMNS)
        conn.execute(text(
            f"INSERT INTO {raw} ({columns}) SELECT {columns} FROM {tmp} WHERE true"
            " ON CONFLICT (tenant_id, entity, psa_id) DO UPDATE SET payload = excluded.payload,"
            " record = excluded.record, last_seen_at = excluded.last_seen_at,"
            " seen_run_id = excluded.seen_run_id, vanished_at = NULL"
        ))
        if full:
            result = conn.execute(
                update(raw_records)
                .where(raw_records.c.tenant_id == self.tenant_id, raw_records.c.entity == self.entity,
                       raw_records.c.vanished_at.is_(None),
                       raw_records.c.seen_run_id.is_distinct_from(self.run_id))
                .values(vanished_at=self.now)
            )
            self.counts.vanished = result.rowcount
        _set_cursor(conn, self.tenant_id, self.entity, self.now)
        return self.counts


def mark_vanished(conn: Connection, tenant_id: str, entity: str, present_ids: set[str], now: datetime) -> int:
    """After an incremental extraction: records whose id the PSA no longer lists."""
    live = conn.scalars(select(raw_records.c.psa_id).where(
        raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity, raw_records.c.vanished_at.is_(None)
    )).all()
    gone = [psa_id for psa_id in live if psa_id not in present_ids]
    if gone:
        conn.execute(
            update(raw_records)
            .where(raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity,
                   raw_records.c.psa_id.in_(gone))
            .values(vanished_at=now)
        )
    return len(gone)


def _set_cursor(conn: Connection, tenant_id: str, entity: str, now: datetime) -> None:
    conn.execute(extract_cursors.delete().where(
        extract_cursors.c.tenant_id == tenant_id, extract_cursors.c.entity == entity))
    conn.execute(extract_cursors.insert(), {"tenant_id": tenant_id, "entity": entity, "extracted_at": now})


def extract_cursor(engine: Engine, tenant_id: str, entity: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.scalar(select(extract_cursors.c.extracted_at).where(
            extract_cursors.c.tenant_id == tenant_id, extract_cursors.c.entity == entity))


@dataclass(frozen=True)
class StagedRecord:
    psa_id: str
    record: dict
    first_seen_at: datetime


def staged_records(engine: Engine, tenant_id: str, entity: str) -> list[StagedRecord]:
    """The live (not vanished) normalized records of one entity, ordered by psa_id."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(raw_records.c.psa_id, raw_records.c.record, raw_records.c.first_seen_at)
            .where(raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity,
                   raw_records.c.vanished_at.is_(None))
            .order_by(raw_records.c.psa_id)
        ).all()
    return [StagedRecord(psa_id, json.loads(record), seen) for psa_id, record, seen in rows]


def staged_payload(engine: Engine, tenant_id: str, entity: str, psa_id: str) -> dict | None:
    """The record exactly as the PSA returned it (for `mapping details`)."""
    with engine.connect() as conn:
        payload = conn.scalar(select(raw_records.c.payload).where(
            raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity, raw_records.c.psa_id == psa_id))
    return None if payload is None else json.loads(payload)


def quarantine_records(conn: Connection, tenant_id: str, entity: str,
                       items: list[tuple[str | None, str, object]], run_id: str, now: datetime) -> int:
    """items: (psa_id, reason, payload). The payload is the PSA's record, which holds no credentials;
    whatever the PSA sent, what is written fits the columns and holds no NUL (`payload_text`)."""
    if items:
        conn.execute(quarantine.insert(), [
            {"tenant_id": tenant_id, "entity": entity, "psa_id": None if psa_id is None else payload_id({"id": psa_id}),
             "reason": safe_text(reason), "payload": payload_text(payload), "sync_run_id": run_id, "created_at": now}
            for psa_id, reason, payload in items
        ])
    return len(items)


def live_staged_count(conn: Connection, tenant_id: str, entity: str) -> int:
    """Records of `entity` the last extractions staged and did not see vanish."""
    return conn.scalar(select(func.count()).select_from(raw_records).where(
        raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity, raw_records.c.vanished_at.is_(None)))


def has_staged_records(engine: Engine, tenant_id: str) -> bool:
    with engine.connect() as conn:
        return conn.scalar(select(raw_records.c.psa_id).where(raw_records.c.tenant_id == tenant_id).limit(1)) is not None
