"""The extract stage, whatever the source: pages in, staging and quarantine out.

`extract_entity` reads one entity of a tenant through any `connectors.base.Connector`;
`stage_pages` (or a `Reading` of its own) stages any iterable of payload pages: the import
source hands its own. Both:

- normalize each payload; one the connector refuses (`RecordError`) or an id seen twice goes
  to quarantine with its reason, the rest goes on;
- commit every page as it arrives into the extraction under way (`warehouse/staging.py`),
  with the connector's token for continuing after it: a run that dies mid-read (killed, PSA
  gone) leaves those pages, and the next run of the same read resumes after the last one;
- merge a complete read into staging in one transaction; a full read marks the staged records
  it did not receive as vanished, an incremental one (changes since the watermark) sweeps the
  ids to find them, unless the PSA's count shows that nothing vanished;
- an incomplete read (`paging.IncompleteExtraction`) discards the pages of the read: the
  previous good staging stays and nothing is marked as vanished.

The watermark an incremental read starts from is the start of the last extraction whose
records were loaded, less `WATERMARK_OVERLAP`: a record edited while that extraction ran (or
stamped by a PSA clock a little behind ours) is read again rather than missed; reading it
twice changes nothing.

Spend lines (entity "spend") are always read whole: each depends on the month it bills. An
incremental (nightly) extract of spend reads them only when something may have changed
(`_why_read_spend`): spend was never read, the window's last month is not the month of the
watermark (a new month bills new recurring lines), or the connector's probe
(`Connector.spend_changed_since`, a few one-record requests) reports a change in a spend source
since the watermark less `WATERMARK_OVERLAP`. Otherwise nothing is read, staging stays, and
the watermark stays where the last read put it: the next probe asks from there again (its cost
does not grow with it), so a change the PSA shows late or stamps behind our clock is still
caught; a probe proves less than a read (docs/decisions.md, "Spend").

No Dagster here: the `<entity>_raw` asset calls `extract_entity` and reports its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine

from hg_pipeline.connectors.base import Connector, ResumeRefused
from hg_pipeline.connectors.http import PsaError, PsaUnreachable, utc_text
from hg_pipeline.connectors.paging import IncompleteExtraction
from hg_pipeline.connectors.records import RecordError
from hg_pipeline.connectors.spend_lines import window
from hg_pipeline.entities import LOADED_ENTITIES
from hg_pipeline.warehouse.staging import (
    Progress,
    StageCounts,
    begin_page,
    discard_progress,
    live_staged_count,
    mark_vanished,
    merge_inflight,
    open_progress,
    page_connection,
    propose_watermark,
    read_ids,
    saved_progress,
    unstaged_inflight_count,
    watermark,
)
from hg_pipeline.warehouse.tenants import Tenant

log = logging.getLogger("hg_pipeline.extract")

PREVIEW_SIZE = 5  # normalized records kept for the UI
WATERMARK_OVERLAP = timedelta(minutes=5)

Normalize = Callable[[str, Mapping], dict]
PayloadId = Callable[[object], "str | None"]


class ExtractError(Exception):
    """The extraction failed and merged nothing; the message is one line (no secret: the
    connectors' messages are scrubbed, the caller scrubs again)."""


@dataclass
class ExtractResult:
    mode: str  # "full" or "incremental"; spend in a nightly: "full: <why>" or "unchanged: <since when>"
    counts: StageCounts
    quarantined: list[tuple[str | None, str, object]] = field(default_factory=list)  # (psa_id, reason, payload)
    preview: list[dict] = field(default_factory=list)
    resumed_pages: int = 0  # pages an interrupted run had committed, not read again


def extract_entity(engine: Engine, tenant: Tenant, entity: str, connector: Connector, run_id: str,
                   incremental: bool = False) -> ExtractResult:
    """Stage `entity` of `tenant` as `connector` reads it: only the changes since the watermark
    (plus an id sweep) when `incremental` and the connector can, else everything; an
    interrupted read of the same kind is continued."""
    tenant_id = tenant.tenant_id
    try:
        with connector:
            why = None
            if incremental and entity == "spend":
                mark = watermark(engine, tenant_id, entity)
                why = _why_read_spend(mark, connector)
                if why is None:
                    log.info("tenant %s: spend unchanged since %s; not read", tenant_id, utc_text(mark))
                    return ExtractResult(mode=f"unchanged: no change in the PSA's spend sources since "
                                              f"{utc_text(mark - WATERMARK_OVERLAP)}", counts=StageCounts())
                log.info("tenant %s: reading spend whole: %s", tenant_id, why)
            since = None
            if incremental and connector.supports_incremental(entity):
                mark = watermark(engine, tenant_id, entity)
                since = None if mark is None else mark - WATERMARK_OVERLAP
            try:
                reading = Reading.begin(engine, tenant_id, entity, run_id, since)
                pages = connector.iter_pages(entity, since=since, previous=reading.previous,
                                             resume=reading.progress.resume_token)
                reading.stage(pages, connector.normalize, connector.payload_id)
            except ResumeRefused as refused:
                log.info("tenant %s: %s cannot resume (%s); reading it again from the start", tenant_id, entity,
                         refused)
                reading = Reading.begin(engine, tenant_id, entity, run_id, since, fresh=True)
                reading.stage(connector.iter_pages(entity, since=since, previous=reading.previous),
                              connector.normalize, connector.payload_id)
            result = reading.merge(None if since is None else _present_ids(connector, entity, reading))
            if why is not None:
                result.mode = f"full: {why}"
            return result
    except IncompleteExtraction as exc:  # the read's pages go: the last good staging stays
        _discard(engine, tenant_id, entity)
        raise ExtractError(f"{exc}; nothing marked as vanished") from None
    except PsaUnreachable as exc:
        raise ExtractError(f"PSA unreachable at {tenant.base_url}: {exc}{_kept(engine, tenant_id, entity)}") from None
    except PsaError as exc:
        raise ExtractError(f"{exc}{_kept(engine, tenant_id, entity)}") from None


def _present_ids(connector: Connector, entity: str, reading: "Reading") -> set[str] | None:
    """After a read of changes: every id the PSA lists (an id sweep), to mark what vanished;
    None (nothing vanished) when the PSA counts exactly the records staged and read, which
    saves the sweep most nights. (A deletion and a creation between the read and the count
    cancel out for one night; the next night's count sees the deletion.)"""
    counted = connector.count(entity)
    if counted is not None and counted == reading.known():
        return None
    return set(connector.iter_ids(entity, previous=reading.previous))


def _why_read_spend(mark: datetime | None, connector: Connector) -> str | None:
    """Why a nightly must read spend whole, or None: nothing says spend changed since `mark`
    (the spend watermark: when the last spend read started)."""
    if mark is None:
        return "spend was never read"
    last, read_in = window(connector.spend_until, 1)[-1], mark.astimezone(timezone.utc).strftime("%Y-%m")
    if last != read_in:
        return f"the spend window now ends in {last}, the last read was in {read_in}"
    return connector.spend_changed_since(mark - WATERMARK_OVERLAP)


def stage_pages(engine: Engine, tenant_id: str, entity: str, pages: Iterable[list], normalize: Normalize,
                payload_id: PayloadId, run_id: str, *, full: bool = True) -> ExtractResult:
    """Stage every page of `pages`, bad records quarantined: as a full extraction of `entity`
    (what is not among them vanishes), or with `full=False` as changes only (upserted, nothing
    vanishes)."""
    reading = Reading.pushed(engine, tenant_id, entity, run_id, full=full)
    reading.stage(pages, normalize, payload_id)
    return reading.merge(None)


@dataclass
class Reading:
    """One read of one entity, its pages committed as they come."""

    engine: Engine
    tenant_id: str
    entity: str
    run_id: str
    progress: Progress
    live_staged: int  # live staged records before this read
    seen: set[str]
    result: ExtractResult

    @property
    def previous(self) -> int:
        """What the PSA listed before, for the connector's sanity checks: 0 for a resumed read,
        which already holds records (a PSA answering "none" for the rest proves nothing wrong)."""
        return 0 if self.progress.resume_token else self.live_staged

    @classmethod
    def begin(cls, engine: Engine, tenant_id: str, entity: str, run_id: str, since: datetime | None, *,
              fresh: bool = False) -> "Reading":
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            if fresh:
                discard_progress(conn, tenant_id, entity)
            progress = open_progress(conn, tenant_id, entity, since, run_id, now)
            live_staged = live_staged_count(conn, tenant_id, entity)
            seen = read_ids(conn, tenant_id, entity, progress.direct) if progress.resume_token else set()
        result = ExtractResult(mode="full" if since is None else "incremental", counts=StageCounts(),
                               resumed_pages=progress.pages)
        if progress.resume_token:
            log.info("tenant %s: resuming %s after %d committed pages", tenant_id, entity, progress.pages)
        return cls(engine, tenant_id, entity, run_id, progress, live_staged, seen, result)

    @classmethod
    def pushed(cls, engine: Engine, tenant_id: str, entity: str, run_id: str, *, full: bool) -> "Reading":
        """A new read of records pushed to us (the import source): full, or changes only."""
        reading = cls.begin(engine, tenant_id, entity, run_id, None if full else datetime.now(timezone.utc),
                            fresh=True)
        if not full:
            reading.result.mode = "partial"
        return reading

    def discard(self) -> None:
        """Forget the pages staged so far; nothing was merged."""
        _discard(self.engine, self.tenant_id, self.entity)

    def stage(self, pages: Iterable[list], normalize: Normalize, payload_id: PayloadId) -> None:
        """Normalize each page and commit it (`begin_page`), the next page read and normalized
        while PostgreSQL writes the one before. A failure keeps every page written before it."""
        with page_connection(self.engine) as conn, ExitStack() as writing:
            try:
                for page in pages:
                    good, bad = [], []
                    for payload in page:
                        try:
                            record = normalize(self.entity, payload)
                        except RecordError as exc:
                            bad.append((payload_id(payload), str(exc), payload))
                            continue
                        if record["psa_id"] in self.seen:
                            bad.append((record["psa_id"], f"id {record['psa_id']} returned twice", payload))
                            continue
                        self.seen.add(record["psa_id"])
                        good.append((record["psa_id"], payload, record))
                    writing.close()  # the page before: written meanwhile, committed now
                    writing.enter_context(begin_page(conn, self.tenant_id, self.entity, self.progress, self.run_id,
                                                     good, getattr(page, "resume", None), bad,
                                                     datetime.now(timezone.utc)))
                    self.result.quarantined.extend(bad)
                    preview = self.result.preview
                    preview.extend(record for _, _, record in good[: PREVIEW_SIZE - len(preview)])
            except BaseException:
                try:
                    writing.close()  # the page written when the read failed is whole: kept
                except Exception:  # noqa: BLE001 - the failure that stopped the read is the one reported
                    log.warning("tenant %s: the %s page written when the read failed was not kept",
                                self.tenant_id, self.entity)
                raise

    def known(self) -> int:
        """Records staged (live) or read now: what the PSA lists if nothing vanished. (Staging
        of the entity has not changed since `begin` counted it: one run of a tenant at a time.)"""
        with self.engine.connect() as conn:
            return self.live_staged + unstaged_inflight_count(conn, self.tenant_id, self.entity)

    def merge(self, present: set[str] | None) -> ExtractResult:
        """The complete read into staging, in one transaction; `present`: every id the PSA
        lists, after an incremental read."""
        started = self.progress.started_at
        with self.engine.begin() as conn:
            counts = merge_inflight(conn, self.tenant_id, self.entity, self.run_id, self.progress)
            if present is not None:
                counts.vanished = mark_vanished(conn, self.tenant_id, self.entity, present, started)
            propose_watermark(conn, self.tenant_id, self.entity, started, at_load=self.entity in LOADED_ENTITIES)
        self.result.counts = counts
        return self.result


def _discard(engine: Engine, tenant_id: str, entity: str) -> None:
    with engine.begin() as conn:
        discard_progress(conn, tenant_id, entity)


def _kept(engine: Engine, tenant_id: str, entity: str) -> str:
    """What the next run picks up from, for the failure's one line."""
    try:
        saved = saved_progress(engine, tenant_id, entity)
    except Exception:  # noqa: BLE001 - a warehouse that fails now is reported by the next step
        return ""
    if saved is None or not saved.pages:
        return ""
    if saved.resume_token is None:
        return f"; {saved.pages} pages read, the next run reads {entity} again"
    return f"; {saved.pages} pages kept, the next run resumes after them"
