"""A whole map stage streams the staged records (bulk.streamed_rows, staging.streamed_records):
batches of a bounded size, the same records in the same order as the whole read."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from hg_pipeline.warehouse.bulk import plain_rows, streamed_rows, utc
from hg_pipeline.warehouse.staging import staged_first_seen_after, staged_records, streamed_records
from hg_pipeline.warehouse.tables import raw_records
from hg_pipeline_tests.warehouse.test_load import add


def _stage(engine, tenant_id: str, entity: str, count: int, vanished: set[int] = frozenset()) -> None:
    first = datetime(2026, 11, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(raw_records.insert(), [
            {"tenant_id": tenant_id, "entity": entity, "psa_id": f"{i:04d}", "payload": json.dumps({"id": i}),
             "record": json.dumps({"id": f"{i:04d}", "name": f"{tenant_id} asset {i}", "cost": i / 4}),
             "first_seen_at": first + timedelta(hours=i), "last_seen_at": first + timedelta(hours=i),
             "vanished_at": first if i in vanished else None}
            for i in range(count)
        ])


def test_a_streamed_read_comes_in_bounded_batches_and_equals_the_whole_read(engine):  # noqa: F811
    add(engine, "acme")
    add(engine, "other")
    _stage(engine, "acme", "assets", 23, vanished={4, 9})
    _stage(engine, "other", "assets", 5)  # another tenant's records never come along
    _stage(engine, "acme", "contacts", 3)

    t = raw_records
    query = select(t.c.psa_id, t.c.record).where(t.c.tenant_id == "acme").order_by(t.c.entity, t.c.psa_id)
    with engine.connect() as conn:
        batches = list(streamed_rows(conn, query, size=5))
        whole = plain_rows(conn, query)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 5, 1]
    assert [tuple(row) for batch in batches for row in batch] == [tuple(row) for row in whole]

    streamed = list(streamed_records(engine, "acme", "assets"))
    assert streamed == staged_records(engine, "acme", "assets")
    assert [s.psa_id for s in streamed] == [f"{i:04d}" for i in range(23) if i not in (4, 9)]
    assert streamed[0].record == {"id": "0000", "name": "acme asset 0", "cost": 0.0}
    first, last = min(utc(s.first_seen_at) for s in streamed), max(utc(s.first_seen_at) for s in streamed)
    assert staged_first_seen_after(engine, "acme", "assets", first - timedelta(microseconds=1)) == {
        s.psa_id for s in streamed}
    assert staged_first_seen_after(engine, "acme", "assets", last) == set()


def test_a_stream_left_early_gives_its_connection_back(engine):  # noqa: F811
    add(engine, "acme")
    _stage(engine, "acme", "assets", 12)
    for _ in range(30):  # more than the pool holds, if a left stream kept its connection
        stream = streamed_records(engine, "acme", "assets")
        assert next(stream).psa_id == "0000"
        stream.close()
    assert len(staged_records(engine, "acme", "assets")) == 12
