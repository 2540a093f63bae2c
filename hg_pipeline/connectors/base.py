"""What the extract stage needs of a source, and how a REST source describes its endpoints.

A connector is whatever satisfies `Connector`: the extract stage (`hg_pipeline/extract.py`)
talks to nothing else. A REST connector states its endpoints as data (`Endpoint`), in the
spirit of dlt's rest_api source: the path, the paginator that reads it, where the records sit
in a page body, the field that says when a record changed, and the prefix that keeps the ids
of several endpoints of one entity apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hg_pipeline.connectors.http import PsaHttp


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint of a PSA API, read for a canonical `entity`.

    path: below the API root, e.g. "company/companies";
    paginator: a strategy name of `paginators.PAGINATORS` ("counted_pages", "numbered_pages",
      "next_url", "keyset_by_id", "whole", ...), or a reader the connector keeps itself
      (Autotask's "picklist", "udf_values");
    data_selector: the key of the record list in a page body (None: the body is the list);
    change_field: the field whose value says when a record last changed (None: the endpoint
      cannot be read incrementally, it is read whole);
    id_prefix: put before every id read here (ConnectWise categories and subcategories share
      one list: "cat-", "sub-");
    sweep: the strategy of the id sweep (`iter_ids`; None: `paginator`): "keyset_by_id" where
      the vendor orders and filters by id, so a deletion during the sweep cannot push a live id
      out of it.
    """

    entity: str
    path: str
    paginator: str
    data_selector: str | None = None
    change_field: str | None = None
    id_prefix: str = ""
    id_field: str = "id"
    sweep: str | None = None


class Page(list):
    """A page of raw payloads, with the token that continues the read after it.

    `resume`: a string the connector understands, passed back as `iter_pages(..., resume=)` by
    the next run when this one stopped after this page; None: the read cannot continue here
    (it starts again from the beginning)."""

    def __init__(self, records=(), resume: str | None = None) -> None:
        super().__init__(records)
        self.resume = resume


class ResumeRefused(Exception):
    """`iter_pages(resume=...)` cannot continue from that token (the PSA's pages moved under it,
    or the token is not one it wrote): the read must start again. Raised before any page."""


@runtime_checkable
class Connector(Protocol):
    """A source as the extract stage reads it. Used as a context manager (closed at the end).

    iter_pages: raw payload pages of `entity`, any of `entities.STAGED_ENTITIES`, spend included
      (only those changed after `since` when given);
      raises `paging.IncompleteExtraction` at the end of a read that does not add up, with
      `previous` the number of records the last extraction staged (a PSA that returns nothing
      must prove it); a page may be a `Page` whose `resume` token, given back as `resume`,
      continues the same read after it (or `ResumeRefused` when it cannot);
    iter_ids: every psa_id of `entity` (an id-only sweep, to find deletions);
    count: how many records of `entity` the PSA lists, None when it cannot say (the extract
      stage skips the id sweep when the count shows nothing vanished);
    normalize: one payload -> the record of `entities.NORMALIZED_FIELDS[entity]`, or
      `records.RecordError` (the stage quarantines it);
    payload_id: the id to file a refused payload under in quarantine (None when it has none);
    supports_incremental: whether `iter_pages(entity, since=...)` reads only changes;
    spend_until: the last month ("YYYY-MM") of the spend window (None: the current month, UTC);
    spend_changed_since: a cheap probe of the PSA's spend sources (one small request per source
      that can be asked for changes): None when none reports a record changed after `since`,
      else why spend must be read whole (a change seen, or a source that cannot be asked).
      The extract stage of a nightly reads spend only when it answers a reason (`extract.py`).
    """

    source: str
    spend_until: str | None

    def __enter__(self) -> "Connector": ...

    def __exit__(self, *exc_info) -> None: ...

    def close(self) -> None: ...

    def iter_pages(self, entity: str, since: datetime | None = None, *, previous: int = 0,
                   resume: str | None = None) -> Iterator[list]: ...

    def iter_ids(self, entity: str, *, previous: int = 0) -> Iterator[str]: ...

    def count(self, entity: str) -> int | None: ...

    def normalize(self, entity: str, payload: Mapping) -> dict: ...

    def payload_id(self, payload: object) -> str | None: ...

    def supports_incremental(self, entity: str) -> bool: ...

    def spend_changed_since(self, since: datetime) -> str | None: ...


class HttpConnector:
    """What every connector on `PsaHttp` shares: closing its pooled session, as a context manager."""

    http: "PsaHttp"

    @property
    def backoff(self) -> float:
        """Seconds before a short page is asked for again (doubling each time)."""
        return self.http.backoff

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
