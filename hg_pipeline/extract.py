"""The extract stage, whatever the source: pages in, staging and quarantine out.

`extract_entity` reads one entity of a tenant through any `connectors.base.Connector`;
`stage_pages` stages any iterable of payload pages (the coming file/API import source hands
its own). Both, inside one transaction per entity:

- normalize each payload; one the connector refuses (`RecordError`) or an id seen twice goes
  to quarantine with its reason, the rest goes on;
- stage what is good (`warehouse/staging.py`); a full read marks the staged records it did not
  receive as vanished, an incremental one (changes since the last extraction) sweeps the ids
  to find them;
- an incomplete read (`paging.IncompleteExtraction`) or a failed request rolls everything
  back: the previous good staging stays and nothing is marked as vanished.

No Dagster here: the `<entity>_raw` asset calls `extract_entity` and reports its result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine

from hg_pipeline.connectors.base import Connector
from hg_pipeline.connectors.http import PsaError, PsaUnreachable
from hg_pipeline.connectors.paging import IncompleteExtraction
from hg_pipeline.connectors.records import RecordError
from hg_pipeline.warehouse.staging import (
    RawStager,
    StageCounts,
    extract_cursor,
    live_staged_count,
    mark_vanished,
    quarantine_records,
)
from hg_pipeline.warehouse.tenants import Tenant

PREVIEW_SIZE = 5  # normalized records kept for the UI


class ExtractError(Exception):
    """The extraction failed and staged nothing; the message is one line (no secret: the
    connectors' messages are scrubbed, the caller scrubs again)."""


@dataclass
class ExtractResult:
    mode: str  # "full" or "incremental"
    counts: StageCounts
    quarantined: list[tuple[str | None, str, object]] = field(default_factory=list)  # (psa_id, reason, payload)
    preview: list[dict] = field(default_factory=list)


def extract_entity(engine: Engine, tenant: Tenant, entity: str, connector: Connector, run_id: str,
                   incremental: bool = False) -> ExtractResult:
    """Stage `entity` of `tenant` as `connector` reads it: only the changes since the last
    extraction (plus an id sweep) when `incremental` and the connector can, else everything."""
    try:
        with connector:
            since = extract_cursor(engine, tenant.tenant_id, entity) \
                if incremental and connector.supports_incremental(entity) else None
            now = datetime.now(timezone.utc)
            with engine.begin() as conn:
                previous = live_staged_count(conn, tenant.tenant_id, entity)  # a PSA saying "none" must prove it
                pages = connector.iter_pages(entity, since=since, previous=previous)
                result = _stage(conn, tenant.tenant_id, entity, pages, connector.normalize, connector.payload_id,
                                run_id, now, full=since is None)
                if since is not None:  # changes only came back: an id sweep finds what vanished
                    present = set(connector.iter_ids(entity, previous=previous))
                    result.counts.vanished = mark_vanished(conn, tenant.tenant_id, entity, present, now)
                    result.mode = "incremental"
                quarantine_records(conn, tenant.tenant_id, entity, result.quarantined, run_id, now)
    except IncompleteExtraction as exc:  # rolled back: the last good staging stays
        raise ExtractError(f"{exc}; nothing marked as vanished") from None
    except PsaUnreachable as exc:
        raise ExtractError(f"PSA unreachable at {tenant.base_url}: {exc}") from None
    except PsaError as exc:
        raise ExtractError(str(exc)) from None
    return result


def stage_pages(engine: Engine, tenant_id: str, entity: str, pages: Iterable[list],
                normalize: Callable[[str, Mapping], dict], payload_id: Callable[[object], str | None],
                run_id: str) -> ExtractResult:
    """Stage every page of `pages` as a full extraction of `entity` (what is not among them
    vanishes), in one transaction, bad records quarantined."""
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        result = _stage(conn, tenant_id, entity, pages, normalize, payload_id, run_id, now, full=True)
        quarantine_records(conn, tenant_id, entity, result.quarantined, run_id, now)
    return result


def _stage(conn: Connection, tenant_id: str, entity: str, pages: Iterable[list],
           normalize: Callable[[str, Mapping], dict], payload_id: Callable[[object], str | None],
           run_id: str, now: datetime, *, full: bool) -> ExtractResult:
    stager = RawStager(conn, tenant_id, entity, run_id, now)
    bad: list[tuple[str | None, str, object]] = []
    seen: set[str] = set()
    first: list[dict] = []
    for page in pages:
        good = []
        for payload in page:
            try:
                record = normalize(entity, payload)
            except RecordError as exc:
                bad.append((payload_id(payload), str(exc), payload))
                continue
            if record["psa_id"] in seen:
                bad.append((record["psa_id"], f"id {record['psa_id']} returned twice", payload))
                continue
            seen.add(record["psa_id"])
            good.append((record["psa_id"], payload, record))
        stager.add(good)
        first.extend(record for _, _, record in good[: PREVIEW_SIZE - len(first)])
    counts = stager.finish(full=full)
    return ExtractResult(mode="full", counts=counts, quarantined=bad, preview=first)
