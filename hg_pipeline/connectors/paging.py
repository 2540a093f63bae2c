"""Completeness of a paged read: a broken PSA must not fake deletions.

A full extraction marks every staged record it did not receive as vanished, so it has to
have received everything. A read is **incomplete** when

- a page before the last comes back short (fewer records than the page size) or empty, and
  asking for it again (`PAGE_RETRIES` times) does not cure it; a short page that links to a
  next page counts as a page before the last;
- it received fewer records than the PSA's own count, counted again at the end (records
  deleted during the read lower the count; those added during it are fine);
- the count could not be read and nothing came back, while the last extraction staged records.

An incomplete read raises `IncompleteExtraction` once it is over (the totals go into the
message); the extract stage then rolls back and marks nothing as vanished. The paging
strategies of `paginators.py` apply these rules and write the resume tokens below.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from hg_pipeline.connectors.base import ResumeRefused
from hg_pipeline.connectors.http import PsaError

PAGE_RETRIES = 2  # a page that comes back short is asked for again this many times


class IncompleteExtraction(PsaError):
    """The pages of a read do not add up: nothing it returned may decide what vanished."""


@dataclass
class Tally:
    """One endpoint's paged read: what came back against what the PSA counts."""

    label: str = ""  # "path: " when an entity reads several endpoints
    counted: int | None = None  # the PSA's count; None when it could not be read
    pages: int | None = None  # pages the count makes
    received: int = 0
    problem: str | None = None  # the first page that broke the sequence
    short: bool = False  # fewer records than counted, also when counted again

    @property
    def incomplete(self) -> bool:
        return self.problem is not None or self.short

    def error(self, url_path: str) -> IncompleteExtraction:
        if self.counted is not None:
            totals = f"received {self.received:,} of the {self.counted:,} the PSA counts"
        else:
            totals = f"received {self.received:,}; the PSA's count could not be read"
        detail = f"{self.problem} ({totals})" if self.problem else totals
        return IncompleteExtraction(f"incomplete extraction: {self.label}{detail}", url_path=url_path)


def page_problem(received: int, page_size: int, number: int, pages: int | None, links_next: bool) -> str | None:
    """Why page `number` (of `pages` counted, None without a count) cannot be the whole of
    it, or None. Only a page before the last (or one linking to a next page) must be full."""
    if received >= page_size:
        return None
    before_last = pages is not None and number < pages
    if not before_last and not links_next:
        return None
    what = "empty" if received == 0 else f"with {received:,} of {page_size:,} records"
    of = f" of {pages:,}" if pages is not None and number <= pages else ""
    return f"page {number:,}{of} came back {what}" + ("" if before_last else " but links to a next page")


def nothing_back(tallies: list[Tally], previous: int) -> IncompleteExtraction | None:
    """A read that received nothing, where some count could not be read, while `previous`
    records were staged: a PSA that says nothing proves nothing."""
    if previous <= 0 or any(t.received for t in tallies) or all(t.counted is not None for t in tallies):
        return None
    return IncompleteExtraction(
        f"incomplete extraction: the PSA returned no records and its count could not be read, "
        f"while {previous:,} were staged before")


# --- resuming an interrupted read -----------------------------------------------------------
# A keyset token names the endpoint (by its index in the entity's list) and the last id read
# there; the read continues with `id > after` in id order, so records deleted or added in the
# part already read cannot shift the rest. A page-number token (for vendors that cannot filter
# by id) also names the last id of the page, to check that the page did not move.


def keyset_token(endpoint: int, page: list) -> str | None:
    """The token continuing after `page` (id-ordered), or None when its last record has no
    integer id (the read cannot continue there; it starts again)."""
    last = page[-1] if page else None
    last_id = last.get("id") if isinstance(last, Mapping) else None
    if isinstance(last_id, bool) or not isinstance(last_id, int):
        return None
    return json.dumps({"endpoint": endpoint, "after": last_id})


def token_endpoint(token: str, endpoints: int) -> int:
    """The index of the endpoint a resume token names (`ResumeRefused` when out of range)."""
    index = _token(token, ("endpoint",))["endpoint"]
    if not 0 <= index < endpoints:
        raise ResumeRefused(f"resume token names endpoint {index} of {endpoints}")
    return index


def keyset_position(token: str | None, endpoints: int) -> tuple[int, int | None]:
    """(endpoint index, last id read there) of a keyset token; (0, None) without one."""
    if token is None:
        return 0, None
    position = _token(token, ("endpoint", "after"))
    if not 0 <= position["endpoint"] < endpoints:
        raise ResumeRefused(f"resume token names endpoint {position['endpoint']} of {endpoints}")
    return position["endpoint"], position["after"]


def page_token(endpoint: int, number: int, page: list) -> str | None:
    """The token continuing after page `number` of a numbered read, with its last id."""
    keyset = keyset_token(endpoint, page)
    if keyset is None:
        return None
    return json.dumps({**json.loads(keyset), "page": number})


def page_position(token: str | None, endpoints: int) -> tuple[int, int, int] | None:
    """(endpoint index, page number, last id on it) of a page token; None without one."""
    if token is None:
        return None
    position = _token(token, ("endpoint", "page", "after"))
    if not 0 <= position["endpoint"] < endpoints or position["page"] < 1:
        raise ResumeRefused(f"resume token {token!r} is out of range")
    return position["endpoint"], position["page"], position["after"]


def _token(token: str, keys: tuple[str, ...]) -> dict:
    try:
        position = json.loads(token)
        if not isinstance(position, dict) or any(
                isinstance(position.get(k), bool) or not isinstance(position.get(k), int) for k in keys):
            raise ValueError
    except ValueError:
        raise ResumeRefused("the resume token is not one this connector wrote") from None
    return position
