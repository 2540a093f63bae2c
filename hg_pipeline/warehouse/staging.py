"""Raw PSA records kept in the warehouse, so that mapping and remaps need no PSA call.

An extraction commits its pages one by one into `raw_inflight` (with `extract_progress`
saying where the read can continue), where no map stage reads them; only a complete read is
merged into `raw_records`, in one transaction (`merge_inflight`). A sync killed mid-read thus
resumes after its last committed page, and a half-read entity never reaches a map stage.

An entity's first full read (nothing of it staged) writes its pages straight into
`raw_records` instead: copying them over again at the merge was a tenth of a first full sync.
Its progress row says so (`direct`); while it is there every reader of staging here and in
`map_marks` leaves the entity out (`first_read_under_way`), so a half-read entity still
never reaches a map stage, and the merge only ends the progress.

The watermark of incremental reads (`extract_cursors`) advances with the load's commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Connection, Engine, Table, func, select, text, update

from hg_pipeline.connectors.records import payload_id, payload_text, safe_text
from hg_pipeline.warehouse.bulk import (
    chunks, copy_field, copy_rows, copy_text, distinct_from, is_postgres, plain_rows, qualified, streamed_rows, utc,
)
from hg_pipeline.warehouse.tables import extract_cursors, extract_progress, quarantine, raw_inflight, raw_records

_INFLIGHT = ("tenant_id", "entity", "psa_id", "payload", "record")
_RAW = ("tenant_id", "entity", "psa_id", "payload", "record", "first_seen_at", "last_seen_at", "seen_run_id")

ANALYZE_AFTER_NEW = 10_000  # new staged records after which staging's statistics are refreshed

@dataclass
class StageCounts:
    received: int = 0
    new: int = 0
    changed: int = 0
    vanished: int = 0


@dataclass(frozen=True)
class Progress:
    """An extraction under way: what it reads (`since`: None for a full read), when it started
    (the watermark it proposes), and where it can continue (`resume_token`, None: from the start)."""

    since: datetime | None
    started_at: datetime
    resume_token: str | None
    pages: int
    records: int
    direct: bool = False  # the entity's first read: its pages go straight into raw_records


# --- an extraction under way: pages committed where no map stage reads them ----------------

def open_progress(conn: Connection, tenant_id: str, entity: str, since: datetime | None, run_id: str,
                  now: datetime) -> Progress:
    """The interrupted read of `entity` to continue, when one reads the same thing (`since`) and
    can resume; else a new read (whatever an older one left is discarded)."""
    row = conn.execute(select(extract_progress).where(
        extract_progress.c.tenant_id == tenant_id, extract_progress.c.entity == entity)).mappings().first()
    if row is not None and row["resume_token"] is not None and _same_moment(row["since"], since) \
            and read_count(conn, tenant_id, entity, row["direct"]) == row["records"]:
        conn.execute(update(extract_progress).where(
            extract_progress.c.tenant_id == tenant_id, extract_progress.c.entity == entity).values(run_id=run_id))
        return Progress(since, utc(row["started_at"]), row["resume_token"], row["pages"], row["records"],
                        row["direct"])
    discard_progress(conn, tenant_id, entity)
    direct = since is None and conn.scalar(select(raw_records.c.psa_id).where(
        raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity).limit(1)) is None
    conn.execute(extract_progress.insert(), {
        "tenant_id": tenant_id, "entity": entity, "since": since, "started_at": now, "run_id": run_id,
        "resume_token": None, "pages": 0, "records": 0, "updated_at": now, "direct": direct})
    return Progress(since, now, None, 0, 0, direct)


def json_text(value: object) -> str:
    """Compact JSON text: orjson (about 10x faster than json, which matters at 300,000 values a
    sync), json for what orjson cannot write (integers beyond 64 bits in a vendor payload)."""
    return _json_bytes(value).decode()


def _json_bytes(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _json_field(value: object) -> bytes:
    """`json_text` as a field of COPY's text form: JSON escapes every control character, so
    only its backslashes need doubling."""
    return _json_bytes(value).replace(b"\\", b"\\\\")


def saved_progress(engine: Engine, tenant_id: str, entity: str) -> Progress | None:
    """The extraction of `entity` under way or interrupted, if any."""
    with engine.connect() as conn:
        row = conn.execute(select(extract_progress).where(
            extract_progress.c.tenant_id == tenant_id, extract_progress.c.entity == entity)).mappings().first()
    if row is None:
        return None
    return Progress(utc(row["since"]), utc(row["started_at"]), row["resume_token"], row["pages"], row["records"],
                    row["direct"])


@contextmanager
def page_connection(engine: Engine) -> Iterator[Connection]:
    """One connection for the pages of a read (`begin_page`, each in a transaction of its own):
    no pool check-out, ping and reset per page.

    On PostgreSQL a page's commit does not wait for its WAL flush (about 5 ms a page here): a
    crash of PostgreSQL before the flush loses the page and its progress together, and empties
    the UNLOGGED `raw_inflight` anyway, so the next run reads the entity afresh (`open_progress`
    compares the counts). A process killed after the commit loses nothing."""
    with engine.connect() as conn:
        postgres = is_postgres(conn)
        if postgres:
            conn.exec_driver_sql("SET synchronous_commit = off")
            conn.commit()
        try:
            yield conn
        finally:
            if postgres and not conn.invalidated:
                conn.rollback()
                conn.exec_driver_sql("RESET synchronous_commit")
                conn.commit()


def begin_page(conn: Connection, tenant_id: str, entity: str, read: Progress, run_id: str,
               records: Iterable[tuple[str, dict, dict]], resume_token: str | None,
               quarantined: list[tuple[str | None, str, object]], now: datetime) -> ExitStack:
    """Begin committing one page of the extraction under way (`read`): its records, its
    quarantined ones (`quarantine_records`) and where the read can continue, in one transaction.
    Returns the page's ExitStack: `close()` waits for the page to be written and commits it.

    On PostgreSQL the page's COPY is sent and left open, so that PostgreSQL writes it while the
    reader normalizes the next page: waiting for it was a quarter of an extraction (about 10 ms
    per 1,000 records here). On SQLite the page is written and committed at once.

    records: (psa_id, vendor payload, normalized record), checked by the connector
    (`connectors/records.py`) and unique within the read; JSON escapes control characters, so
    no NUL reaches a text column."""
    # A direct read's records are stamped as `merge_inflight` stamps what it merges: with the
    # read's start (on SQLite in the text form its plain parameter is stored in, which
    # `map_marks` compares against).
    stamps = (str(read.started_at), str(read.started_at), run_id) if read.direct else ()
    target, columns = qualified(conn, _pages_table(read.direct)), _RAW if read.direct else _INFLIGHT
    postgres = is_postgres(conn)
    if postgres:
        head = f"{copy_field(tenant_id)}\t{copy_field(entity)}\t".encode()
        tail = "".join(f"\t{copy_field(stamp)}" for stamp in stamps).encode() + b"\n"
        rows = [b"".join((head, copy_field(psa_id).encode(), b"\t", _json_field(payload), b"\t",
                          _json_field(record), tail)) for psa_id, payload, record in records]
    else:
        rows = [(tenant_id, entity, psa_id, json_text(payload), json_text(record), *stamps)
                for psa_id, payload, record in records]
    with ExitStack() as page:  # unwound (rolled back) if beginning the page fails
        page.enter_context(conn.begin())
        conn.execute(update(extract_progress).where(
            extract_progress.c.tenant_id == tenant_id, extract_progress.c.entity == entity).values(
            resume_token=resume_token, pages=extract_progress.c.pages + 1,
            records=extract_progress.c.records + len(rows), updated_at=func.now()))
        quarantine_records(conn, tenant_id, entity, quarantined, run_id, now)
        if postgres:
            if rows:
                page.enter_context(copy_text(conn, target, columns)).write(b"".join(rows))
            return page.pop_all()  # left open: PostgreSQL writes the page while the next one is read
        copy_rows(conn, target, columns, rows)
    # SQLite has one writer at a time: its page is committed now, not held open while the next
    # page is fetched (which may wait on the PSA's rate limit).
    return ExitStack()


def _pages_table(direct: bool) -> Table:
    """Where the pages of the extraction under way go (`direct`: an entity's first read)."""
    return raw_records if direct else raw_inflight


def read_ids(conn: Connection, tenant_id: str, entity: str, direct: bool) -> set[str]:
    """The ids the extraction under way has committed (`direct`: an entity's first read)."""
    table = _pages_table(direct)
    return set(conn.scalars(select(table.c.psa_id).where(table.c.tenant_id == tenant_id, table.c.entity == entity)))


def read_count(conn: Connection, tenant_id: str, entity: str, direct: bool) -> int:
    """How many records the extraction under way has committed (`direct`: an entity's first read)."""
    table = _pages_table(direct)
    return conn.scalar(select(func.count()).select_from(table).where(
        table.c.tenant_id == tenant_id, table.c.entity == entity))


def first_read_under_way(conn: Connection, tenant_id: str, entity: str) -> bool:
    """Whether `entity`'s first read is under way (or was interrupted): its records in
    `raw_records` are not staged yet, and readers of staging leave them out."""
    return bool(conn.scalar(select(extract_progress.c.direct).where(
        extract_progress.c.tenant_id == tenant_id, extract_progress.c.entity == entity)))


def unstaged_inflight_count(conn: Connection, tenant_id: str, entity: str) -> int:
    """Records the extraction under way read that are not among the live staged ones."""
    raw, inflight = qualified(conn, raw_records), qualified(conn, raw_inflight)
    return conn.scalar(text(
        f"SELECT COUNT(*) FROM {inflight} i WHERE i.tenant_id = :tenant AND i.entity = :entity AND NOT EXISTS"
        f" (SELECT 1 FROM {raw} r WHERE r.tenant_id = i.tenant_id AND r.entity = i.entity AND r.psa_id = i.psa_id"
        f" AND r.vanished_at IS NULL)"), {"tenant": tenant_id, "entity": entity})


def discard_progress(conn: Connection, tenant_id: str, entity: str) -> None:
    """Forget an extraction under way and the pages it committed: for an entity's first read,
    every record of the entity in staging (no other was there when it began)."""
    if first_read_under_way(conn, tenant_id, entity):
        conn.execute(raw_records.delete().where(raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity))
    _end_progress(conn, tenant_id, entity)


def _end_progress(conn: Connection, tenant_id: str, entity: str) -> None:
    for table in (raw_inflight, extract_progress):
        conn.execute(table.delete().where(table.c.tenant_id == tenant_id, table.c.entity == entity))


# The columns the plans over staging depend on: statistics of the payloads themselves (hundreds
# of bytes each) cost ANALYZE half its time and no plan uses them.
_PLANNED = "(tenant_id, entity, psa_id, last_seen_at, vanished_at)"


def merge_inflight(conn: Connection, tenant_id: str, entity: str, run_id: str, read: Progress) -> StageCounts:
    """The completed read into `raw_records` (the caller's transaction makes it one step): new
    and changed records counted and upserted, an unchanged one not rewritten (a second sync of
    an unchanged PSA writes nothing here); after a full read, staged records it did not receive
    marked as vanished. An entity's first read is there already: every record is new. The
    extraction under way is then over."""
    raw, inflight = qualified(conn, raw_records), qualified(conn, raw_inflight)
    where = "i.tenant_id = :tenant AND i.entity = :entity"
    params = {"tenant": tenant_id, "entity": entity, "now": read.started_at, "run": run_id}
    received = read_count(conn, tenant_id, entity, read.direct)
    scope = (raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity)
    if read.direct:
        counts = StageCounts(received=received, new=received)
    else:
        counts = _upsert_staged(conn, raw, inflight, where, params, received)
        if read.since is None and conn.scalar(select(raw_records.c.psa_id).where(
                *scope, raw_records.c.vanished_at.is_(None)).limit(1)) is not None:
            counts.vanished = conn.execute(text(
                # NOT EXISTS, an anti-join: NOT IN over a million ids that outgrow work_mem is a
                # subplan scanned once per staged row.
                f"UPDATE {raw} SET vanished_at = :now WHERE tenant_id = :tenant AND entity = :entity"
                f" AND vanished_at IS NULL AND NOT EXISTS (SELECT 1 FROM {inflight} i WHERE {where}"
                f" AND i.psa_id = {raw}.psa_id)"
            ), params).rowcount
    if is_postgres(conn) and counts.new >= ANALYZE_AFTER_NEW:
        conn.execute(text(f"ANALYZE {raw} {_PLANNED}"))
    _end_progress(conn, tenant_id, entity)
    return counts


def _upsert_staged(conn: Connection, raw: str, inflight: str, where: str, params: dict, received: int) -> StageCounts:
    """New and changed records of the read counted and upserted into staging; an unchanged one
    is not rewritten (a second sync of an unchanged PSA writes nothing here)."""
    ne = distinct_from(conn)
    joined = (f"FROM {inflight} i LEFT JOIN {raw} r ON r.tenant_id = i.tenant_id AND r.entity = i.entity"
              f" AND r.psa_id = i.psa_id WHERE {where}")
    differs = f"(r.payload {ne} i.payload OR r.record {ne} i.record OR r.vanished_at IS NOT NULL)"
    if is_postgres(conn) and received >= ANALYZE_AFTER_NEW:
        # Fresh statistics, or PostgreSQL joins a read of 100,000 records to staging that grew
        # since autovacuum last looked as if both held a handful: a nested loop, minutes long.
        # (A small read, a nightly's, joins cheaply whatever the plan.)
        conn.execute(text(f"ANALYZE {inflight} (tenant_id, entity, psa_id)"))
    new, changed = conn.execute(text(
        f"SELECT COALESCE(SUM(CASE WHEN r.psa_id IS NULL THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN r.psa_id IS NOT NULL AND {differs} THEN 1 ELSE 0 END), 0) {joined}"
    ), params).one()
    counts = StageCounts(received=received, new=int(new), changed=int(changed))
    if counts.new or counts.changed:
        conn.execute(text(
            f"INSERT INTO {raw} ({', '.join(_RAW)})"
            f" SELECT i.tenant_id, i.entity, i.psa_id, i.payload, i.record, :now, :now, :run {joined}"
            f" AND (r.psa_id IS NULL OR {differs})"
            " ON CONFLICT (tenant_id, entity, psa_id) DO UPDATE SET payload = excluded.payload,"
            " record = excluded.record, last_seen_at = excluded.last_seen_at,"
            " seen_run_id = excluded.seen_run_id, vanished_at = NULL"
        ), params)
    return counts


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


# --- the watermark ----------------------------------------------------------------------------

def propose_watermark(conn: Connection, tenant_id: str, entity: str, started_at: datetime, *,
                      at_load: bool) -> None:
    """Record that `entity` was extracted as of `started_at`: current at once (`at_load` False:
    nothing loads the entity), else pending until `promote_watermark` runs in the load's commit."""
    current = conn.execute(select(extract_cursors.c.extracted_at).where(
        extract_cursors.c.tenant_id == tenant_id, extract_cursors.c.entity == entity)).first()
    values = {"pending_at": started_at} if at_load else {"extracted_at": started_at, "pending_at": None}
    if current is None:
        conn.execute(extract_cursors.insert(), {"tenant_id": tenant_id, "entity": entity,
                                                "extracted_at": None, **values})
    else:
        conn.execute(update(extract_cursors).where(
            extract_cursors.c.tenant_id == tenant_id, extract_cursors.c.entity == entity).values(**values))


def promote_watermark(conn: Connection, tenant_id: str, entity: str) -> None:
    """The load of `entity` commits: its extraction's watermark becomes the one to read from."""
    conn.execute(update(extract_cursors).where(
        extract_cursors.c.tenant_id == tenant_id, extract_cursors.c.entity == entity,
        extract_cursors.c.pending_at.is_not(None)).values(
        extracted_at=extract_cursors.c.pending_at, pending_at=None))


def watermark(engine: Engine, tenant_id: str, entity: str) -> datetime | None:
    """When the loaded data of `entity` was extracted (None: never loaded: read it whole)."""
    with engine.connect() as conn:
        return utc(conn.scalar(select(extract_cursors.c.extracted_at).where(
            extract_cursors.c.tenant_id == tenant_id, extract_cursors.c.entity == entity)))


def _same_moment(a: datetime | None, b: datetime | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and utc(a) == utc(b))


@dataclass(frozen=True)
class StagedRecord:
    psa_id: str
    record: dict
    first_seen_at: datetime


def staged_records(engine: Engine, tenant_id: str, entity: str,
                   psa_ids: list[str] | None = None) -> list[StagedRecord]:
    """The live (not vanished) normalized records of one entity (only those of `psa_ids` when
    given), ordered by psa_id."""
    query = _staged_query(tenant_id, entity)
    with engine.connect() as conn:
        if first_read_under_way(conn, tenant_id, entity):
            return []
        if psa_ids is None:
            rows = plain_rows(conn, query)
        else:
            column = raw_records.c.psa_id
            rows = sorted(row for ids in chunks(psa_ids) for row in plain_rows(conn, query.where(column.in_(ids))))
    return [_staged(row) for row in rows]


def streamed_records(engine: Engine, tenant_id: str, entity: str) -> Iterator[StagedRecord]:
    """`staged_records` of the whole entity as a stream: a map stage holds one batch of them at
    a time, not the entity (a million records of the biggest tenant are over a GiB as dicts)."""
    with engine.connect() as conn:
        if first_read_under_way(conn, tenant_id, entity):
            return
        for batch in streamed_rows(conn, _staged_query(tenant_id, entity)):
            yield from map(_staged, batch)


def staged_first_seen_after(engine: Engine, tenant_id: str, entity: str, moment: datetime) -> set[str]:
    """PSA ids of the live staged records of `entity` first seen after `moment`, without the
    records. Compared here, not in SQL: SQLite holds staging's times as text in two forms."""
    t = raw_records
    query = _staged_query(tenant_id, entity).with_only_columns(t.c.psa_id, t.c.first_seen_at).order_by(None)
    with engine.connect() as conn:
        if first_read_under_way(conn, tenant_id, entity):
            return set()
        return {psa_id for batch in streamed_rows(conn, query) for psa_id, seen in batch if utc(seen) > moment}


def _staged_query(tenant_id: str, entity: str):
    t = raw_records
    return (select(t.c.psa_id, t.c.record, t.c.first_seen_at)
            .where(t.c.tenant_id == tenant_id, t.c.entity == entity, t.c.vanished_at.is_(None))
            .order_by(t.c.psa_id))


def _staged(row: tuple) -> StagedRecord:
    psa_id, record, seen = row
    # orjson: a normalized record holds no integer beyond 64 bits (numbers are floats, ids text).
    return StagedRecord(psa_id, orjson.loads(record), seen)


def staged_payload(engine: Engine, tenant_id: str, entity: str, psa_id: str) -> dict | None:
    """The record exactly as the PSA returned it (for `mapping details`)."""
    with engine.connect() as conn:
        if first_read_under_way(conn, tenant_id, entity):
            return None
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
    if first_read_under_way(conn, tenant_id, entity):
        return 0
    return conn.scalar(select(func.count()).select_from(raw_records).where(
        raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity, raw_records.c.vanished_at.is_(None)))


def has_staged_records(engine: Engine, tenant_id: str) -> bool:
    with engine.connect() as conn:
        reading = conn.scalars(select(extract_progress.c.entity).where(
            extract_progress.c.tenant_id == tenant_id, extract_progress.c.direct)).all()
        return conn.scalar(select(raw_records.c.psa_id).where(
            raw_records.c.tenant_id == tenant_id, raw_records.c.entity.not_in(reading)).limit(1)) is not None
