"""An entity's first read goes straight into staging, unseen until it is merged (issue 10), on
a real PostgreSQL and on the embedded SQLite: readers of staging leave it out, a discarded
first read takes its records with it, and a later read goes through `raw_inflight` again
and never discards what is staged."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from sqlalchemy import func, select

from hg_pipeline.connectors.base import Page
from hg_pipeline.extract import Reading
from hg_pipeline.warehouse.map_marks import StagedChanges, staged_changes, staged_through
from hg_pipeline.warehouse.staging import (
    discard_progress, has_staged_records, live_staged_count, saved_progress, staged_payload, staged_records,
)
from hg_pipeline.warehouse.tables import raw_inflight, raw_records, tenants
from hg_pipeline_tests.warehouse.test_load import add


def _normalize(entity, payload):
    return {"psa_id": str(payload["id"]), "name": payload["name"]}


def _payload_id(payload):
    return str(payload["id"])


def _pages(first_id: int, pages: int, size: int = 3) -> list[Page]:
    """Pages a read can continue after (the token: the last id)."""
    starts = range(first_id, first_id + pages * size, size)
    return [Page([{"id": i, "name": f"Company {i}"} for i in range(start, start + size)], resume=str(start + size - 1))
            for start in starts]


def _rows(engine, table, tenant: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table).where(table.c.tenant_id == tenant))


def _begin(engine, run_id: str, since=None) -> Reading:
    return Reading.begin(engine, "acme", "companies", run_id, since)


def test_a_first_read_is_in_staging_and_unseen_until_merged(engine):
    add(engine, "acme")
    reading = _begin(engine, "run-1")
    assert reading.progress.direct
    reading.stage(_pages(1, 2), _normalize, _payload_id)

    assert _rows(engine, raw_records, "acme") == 6 and _rows(engine, raw_inflight, "acme") == 0
    assert staged_records(engine, "acme", "companies") == []
    with engine.connect() as conn:
        assert live_staged_count(conn, "acme", "companies") == 0
    assert not has_staged_records(engine, "acme")
    assert staged_payload(engine, "acme", "companies", "1") is None
    assert staged_through(engine, "acme", "companies") is None
    assert staged_changes(engine, "acme", "companies", None) == StagedChanges(changed=[], gone=[], live=0)

    result = reading.merge(None)
    assert (result.counts.received, result.counts.new) == (6, 6)
    assert saved_progress(engine, "acme", "companies") is None
    staged = staged_records(engine, "acme", "companies")
    assert [r.psa_id for r in staged] == sorted(str(i) for i in range(1, 7))
    assert all(r.first_seen_at == reading.progress.started_at for r in staged)
    assert has_staged_records(engine, "acme") and staged_payload(engine, "acme", "companies", "4")["id"] == 4
    # Stamped as a merge stamps: what changed after the read's start is nothing, before it everything.
    started = reading.progress.started_at
    assert staged_through(engine, "acme", "companies") == started
    assert staged_changes(engine, "acme", "companies", started).changed == []
    assert len(staged_changes(engine, "acme", "companies", started - timedelta(seconds=1)).changed) == 6


def test_an_interrupted_first_read_resumes_and_a_discarded_one_leaves_nothing(engine):
    add(engine, "acme")
    reading = _begin(engine, "run-1")
    reading.stage(_pages(1, 2), _normalize, _payload_id)  # the run dies here: no merge

    resumed = _begin(engine, "run-2")
    assert resumed.progress.direct and resumed.progress.resume_token == "6"
    assert resumed.seen == {str(i) for i in range(1, 7)}
    resumed.stage(_pages(7, 1), _normalize, _payload_id)
    resumed.stage([Page([{"id": 3, "name": "Company 3 again"}], resume="9")], _normalize, _payload_id)
    assert [psa_id for psa_id, _, _ in resumed.result.quarantined] == ["3"]
    assert _rows(engine, raw_records, "acme") == 9 and staged_records(engine, "acme", "companies") == []

    # A read that must start again (the PSA refused to continue) discards the first read's records.
    fresh = Reading.begin(engine, "acme", "companies", "run-3", None, fresh=True)
    assert fresh.progress.direct and _rows(engine, raw_records, "acme") == 0
    fresh.stage(_pages(1, 1), _normalize, _payload_id)
    with engine.begin() as conn:
        discard_progress(conn, "acme", "companies")
    assert _rows(engine, raw_records, "acme") == 0 and saved_progress(engine, "acme", "companies") is None


def test_a_later_read_goes_through_inflight_and_its_discard_keeps_staging(engine):
    add(engine, "acme")
    first = _begin(engine, "run-1")
    first.stage(_pages(1, 2), _normalize, _payload_id)
    first.merge(None)

    second = _begin(engine, "run-2")
    assert not second.progress.direct
    second.stage(_pages(1, 1), _normalize, _payload_id)
    assert _rows(engine, raw_inflight, "acme") == 3
    with engine.begin() as conn:
        discard_progress(conn, "acme", "companies")
    assert len(staged_records(engine, "acme", "companies")) == 6 and _rows(engine, raw_inflight, "acme") == 0

    # A read of changes is never a first read, even of an entity with nothing staged.
    since = datetime.now(timezone.utc)
    assert not Reading.begin(engine, "acme", "contacts", "run-3", since).progress.direct


def _failing_after(pages: list[Page], error: Exception):
    yield from pages
    raise error


def test_a_read_that_fails_keeps_every_page_it_wrote(engine):
    """A page is committed while the next one is read (on PostgreSQL its COPY is written
    meanwhile): the PSA failing after two pages leaves both committed, the failure as raised."""
    add(engine, "acme")
    reading = _begin(engine, "run-1")
    gone = ConnectionError("the PSA went away")
    with pytest.raises(ConnectionError) as raised:
        reading.stage(_failing_after(_pages(1, 2), gone), _normalize, _payload_id)
    assert raised.value is gone
    saved = saved_progress(engine, "acme", "companies")
    assert (saved.pages, saved.records, saved.resume_token) == (2, 6, "6")
    assert _rows(engine, raw_records, "acme") == 6


def test_a_page_the_warehouse_refuses_fails_the_read_and_keeps_the_pages_before(warehouse):
    """PostgreSQL refuses a page only when its COPY ends, after the next page was read: the
    read fails with the warehouse's error, the pages before the refused one stay committed."""
    add(warehouse, "acme")
    reading = _begin(warehouse, "run-1")
    too_long = Page([{"id": 10, "name": "x" * 100}], resume="10")

    def normalize(entity, payload):  # an id wider than raw_records.psa_id, past the connector's checks
        return {"psa_id": payload["name"] if payload["id"] == 10 else str(payload["id"]), "name": payload["name"]}

    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        reading.stage([*_pages(1, 2), too_long, *_pages(11, 1)], normalize, _payload_id)
    saved = saved_progress(warehouse, "acme", "companies")
    assert (saved.pages, saved.records, saved.resume_token) == (2, 6, "6")
    assert _rows(warehouse, raw_records, "acme") == 6


def test_the_warehouse_is_not_held_while_the_next_page_is_fetched(engine):
    """While the next page comes from the PSA (seconds, behind a rate limit) another writer can
    write: on SQLite, which has one writer at a time, the page before is committed already."""
    add(engine, "acme")
    reading = _begin(engine, "run-1")
    written = []

    def pages():
        for page in _pages(1, 3):
            yield page
            if engine.dialect.name == "sqlite":  # a writer of its own, which gives up after 1 s
                with sqlite3.connect(engine.url.database, timeout=1) as other:
                    other.execute("UPDATE tenants SET name = ? WHERE tenant_id = 'acme'", (f"after {page.resume}",))
            else:
                with engine.begin() as other:
                    other.execute(tenants.update().where(tenants.c.tenant_id == "acme").values(
                        name=f"after {page.resume}"))
            written.append(page.resume)

    reading.stage(pages(), _normalize, _payload_id)
    assert written == ["3", "6", "9"] and _rows(engine, raw_records, "acme") == 9
