"""Paging strategies: the page loop of every REST source, named in `PAGINATORS`.

A connector states its endpoints as data (`base.Endpoint`, whose `paginator` and `sweep` are
names of `PAGINATORS`) and reads them with `read(source, endpoints, request_of, ...)`. The
strategy owns the page loop, the completeness tally (`paging.py`) and the resume token of its
kind; the connector keeps what is vendor-specific behind a narrow interface (`PagedSource`):

- `fetch(endpoint, request, abandon=None) -> Answer`: one page (records, the count its body
  states, the request for the next page the answer names: Link header, `nextPageUrl`);
- `counted(endpoint, request) -> int | None`: the PSA's count of records for the request's
  conditions (None when it cannot be read);
- `after(endpoint, request, last_id) -> Request`: the request narrowed to ids above `last_id`
  (keyset reads and resumes);
- `where(endpoint)`: the API path an error names; `page_size`, `concurrency`, `backoff`.

Strategies:

- "counted_pages": count first, pages by number `concurrency` at a time, yielded in order;
  Link headers (or whatever `fetch` names as next) followed past the counted pages and when the
  count fails. Resumes with `id > last` (ConnectWise);
- "link_header": no count, follow the next request each answer names, one page at a time;
- "next_url": count first, then follow the next request (Autotask's `nextPageUrl`, the same
  body POSTed again). Resumes with `id > last`;
- "numbered_pages": page number `page_no`, the count in the body of each page (HaloPSA's
  `record_count`), one page at a time. Resumes by asking the last page read again and refusing
  when it no longer ends with the same id;
- "keyset_by_id": ids ascending, each page `id > last`, one page at a time: a record deleted
  during the read cannot push a live one out of it (id sweeps where the vendor allows it);
- "whole": one request, the whole list (its count checked when the body states one).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from hg_pipeline.connectors.base import Endpoint, Page, ResumeRefused
from hg_pipeline.connectors.http import Abandon
from hg_pipeline.connectors.paging import (
    PAGE_RETRIES,
    Tally,
    keyset_position,
    keyset_token,
    nothing_back,
    page_position,
    page_problem,
    page_token,
    token_endpoint,
)

log = logging.getLogger("hg_pipeline.connectors")


@dataclass(frozen=True)
class Request:
    """One page request: `url` (absolute, or below the connector's root), the query `params`,
    and a JSON `body` for a POSTed query (None: a GET)."""

    url: str
    params: Mapping[str, object] | None = None
    body: Mapping[str, object] | None = None

    def with_params(self, **params: object) -> "Request":
        return replace(self, params={**(self.params or {}), **params})


@dataclass
class Answer:
    """One page as the connector read it: its records, the count its body states (None: none),
    and the request for the page after it (None: the answer names none)."""

    records: list
    count: int | None = None
    next: Request | None = None


class PagedSource(Protocol):
    """What a strategy needs of a connector (see the module docstring); optional: `page_threads`,
    the name of the threads that fetch pages in flight ("psa-page" without it)."""

    page_size: int
    concurrency: int
    backoff: float

    def fetch(self, endpoint: Endpoint, request: Request, abandon: Abandon | None = None) -> Answer: ...

    def counted(self, endpoint: Endpoint, request: Request) -> int | None: ...

    def after(self, endpoint: Endpoint, request: Request, last_id: int) -> Request: ...

    def where(self, endpoint: Endpoint) -> str: ...


Pages = Iterator[tuple[int, list]]  # (page number, 0 for a whole list; records)


def read(source: PagedSource, endpoints: Sequence[Endpoint], request_of: Callable[[Endpoint], Request], *,
         previous: int = 0, resume: str | None = None, sweep: bool = False) -> Iterator[tuple[Endpoint, Page]]:
    """(endpoint, page) of every endpoint in turn, each read by its strategy (`sweep`: the
    endpoint's id-sweep strategy) and checked for completeness; `resume`: a token of an earlier
    page, to continue after it. `previous`: records the last extraction staged (a read that gets
    nothing back where a count could not be read is then incomplete)."""
    start, position = 0, None
    if resume is not None:
        start = token_endpoint(resume, len(endpoints))
        position = strategy(endpoints[start], sweep).position(resume, len(endpoints))
    tallies = []
    for index in range(start, len(endpoints)):
        endpoint = endpoints[index]
        paginator = strategy(endpoint, sweep)
        tally = Tally(label=f"{endpoint.path}: " if len(endpoints) > 1 else "")
        tallies.append(tally)
        pages = paginator.pages(source, endpoint, request_of(endpoint), tally, position if index == start else None)
        for number, records in pages:
            yield endpoint, Page(records, paginator.token(index, number, records))
    empty = nothing_back(tallies, previous)
    if empty is not None:
        raise empty


def total(source: PagedSource, endpoints: Sequence[Endpoint], request_of: Callable[[Endpoint], Request]) -> int | None:
    """How many records the PSA lists at `endpoints` (their counts), None when one cannot be read."""
    counts = [source.counted(endpoint, request_of(endpoint)) for endpoint in endpoints]
    return None if None in counts else sum(counts)


def strategy(endpoint: Endpoint, sweep: bool = False) -> "Paginator":
    name = (endpoint.sweep or endpoint.paginator) if sweep else endpoint.paginator
    try:
        return PAGINATORS[name]
    except KeyError:
        raise ValueError(f"{endpoint.path}: no paginator {name!r}; expected one of {', '.join(PAGINATORS)}") from None


class Paginator:
    """A paging strategy: `pages` reads one endpoint into `tally` and raises
    `IncompleteExtraction` at its end when the pages do not add up."""

    def pages(self, source: PagedSource, endpoint: Endpoint, request: Request, tally: Tally,
              position: object = None) -> Pages:
        raise NotImplementedError

    def token(self, index: int, number: int, page: list) -> str | None:
        """The resume token after `page` (page `number` of endpoint `index`); default: keyset."""
        return keyset_token(index, page)

    def position(self, token: str, endpoints: int) -> object:
        """Where `token` continues, as `pages(position=)` takes it; default: the last id read."""
        return keyset_position(token, endpoints)[1]


class FollowNext(Paginator):
    """Follow the next request each answer names (a Link header, a `nextPageUrl`), counting
    first when `counted`."""

    def __init__(self, counted: bool) -> None:
        self.counted = counted

    def pages(self, source, endpoint, request, tally, position=None):
        if position is not None:
            request = source.after(endpoint, request, position)
        if self.counted:
            count_first(source, endpoint, request, tally)
        yield from follow(source, endpoint, request, tally, 1)
        finish(source, endpoint, request, tally)


class CountedPages(Paginator):
    """Count first, then pages 1..N by number `concurrency` at a time, yielded in order; the
    next requests the answers name are followed past them, or from page 1 when the count fails."""

    def __init__(self, page_param: str = "page") -> None:
        self.page_param = page_param

    def pages(self, source, endpoint, request, tally, position=None):
        if position is not None:
            request = source.after(endpoint, request, position)
        count_first(source, endpoint, request, tally)
        following = request.with_params(**{self.page_param: 1})
        if tally.pages is not None:
            requests = [request.with_params(**{self.page_param: n}) for n in range(1, tally.pages + 1)]
            for number, (answer, problem) in enumerate(concurrently(source, endpoint, requests, tally.pages), 1):
                tally.received += len(answer.records)
                tally.problem = tally.problem or problem
                following = answer.next
                if answer.records:
                    yield number, answer.records
        # Without a count, or when the last counted page names another one (records were added
        # since the count): follow it.
        if following is not None:
            yield from follow(source, endpoint, following, tally, (tally.pages or 0) + 1)
        finish(source, endpoint, request, tally)


class NumberedPages(Paginator):
    """Pages by number one at a time, the PSA's count in the body of each."""

    def __init__(self, page_param: str = "page_no") -> None:
        self.page_param = page_param

    def pages(self, source, endpoint, request, tally, position=None):
        number = 1
        if position is not None:
            number, last_id = position
            records = self._page(source, endpoint, request, number, tally)
            last = records[-1] if records else None
            if not isinstance(last, Mapping) or last.get(endpoint.id_field) != last_id:
                raise ResumeRefused(f"page {number} of {endpoint.path} moved since it was read")
            # The pages before it were full, or the interrupted read would have stopped there.
            tally.received = (number - 1) * source.page_size + len(records)
            number += 1
        while True:
            records = self._page(source, endpoint, request, number, tally)
            tally.received += len(records)
            if records:
                yield number, records
            # Past the counted pages, a full page may have a successor (records added meanwhile).
            if number >= (tally.pages or 0) and len(records) < source.page_size:
                break
            number += 1
        finish(source, endpoint, request, tally)

    def _page(self, source, endpoint, request, number: int, tally: Tally) -> list:
        """Page `number` (asked for again while shorter than it must be); its count becomes the
        tally's when it is the first page or no count was read yet."""

        def problem(answer: Answer) -> str | None:
            if number == 1 or tally.counted is None:
                tally.counted = answer.count
                tally.pages = None if answer.count is None else max(1, math.ceil(answer.count / source.page_size))
            return page_problem(len(answer.records), source.page_size, number, tally.pages, False)

        answer, found = checked(source, endpoint, request.with_params(**{self.page_param: number}), problem)
        tally.problem = tally.problem or found
        return answer.records

    def token(self, index, number, page):
        return page_token(index, number, page)

    def position(self, token, endpoints):
        return page_position(token, endpoints)[1:]


class KeysetById(Paginator):
    """Ids ascending, each page asking for the ids above the last one read, one at a time.

    A page needs no number, so a record deleted (or added) in the part already read shifts
    nothing: every record live through the whole read is in it. A short page is no problem by
    itself (the next request takes up where it ended); the read ends with a page that brings no
    new id, or with a short page at or past the counted last. The PSA's count, read again when
    fewer came back, says whether it adds up."""

    def pages(self, source, endpoint, request, tally, position=None):
        def above(last_id: int | None) -> Request:
            return request if last_id is None else source.after(endpoint, request, last_id)

        count_first(source, endpoint, above(position), tally)
        after, number = position, 1
        while True:
            records = source.fetch(endpoint, above(after)).records
            last = _largest_id(records, endpoint.id_field)
            new = last is not None and (after is None or last > after)
            if records and (new or number == 1):
                tally.received += len(records)
                yield number, records
            if not new or (len(records) < source.page_size and number >= (tally.pages or math.inf)):
                break
            after, number = last, number + 1
        finish(source, endpoint, above(position), tally)


class Whole(Paginator):
    """One request, the whole list; short of the count its body states, it is incomplete."""

    def pages(self, source, endpoint, request, tally, position=None):
        answer = source.fetch(endpoint, request)
        tally.counted, tally.received = answer.count, len(answer.records)
        if answer.count is not None and len(answer.records) < answer.count:
            tally.short = True
            raise tally.error(source.where(endpoint))
        if answer.records:
            yield 0, answer.records

    def token(self, index, number, page):
        return None

    def position(self, token, endpoints):
        raise ResumeRefused("a whole list is read in one request: there is nothing to continue")


PAGINATORS: dict[str, Paginator] = {
    "counted_pages": CountedPages(),
    "link_header": FollowNext(counted=False),
    "next_url": FollowNext(counted=True),
    "numbered_pages": NumberedPages(),
    "keyset_by_id": KeysetById(),
    "whole": Whole(),
}


# --- the parts the strategies share ---------------------------------------------------------


def count_first(source: PagedSource, endpoint: Endpoint, request: Request, tally: Tally) -> None:
    tally.counted = source.counted(endpoint, request)
    if tally.counted is not None:
        tally.pages = max(1, math.ceil(tally.counted / source.page_size))


def finish(source: PagedSource, endpoint: Endpoint, request: Request, tally: Tally) -> None:
    """The end of a read: fewer records than counted are counted again (records deleted during
    the read lower the count); an incomplete read raises."""
    if tally.counted is not None and tally.received < tally.counted and tally.problem is None:
        recount = source.counted(endpoint, request)
        tally.short = recount is None or tally.received < recount
    if tally.incomplete:
        raise tally.error(source.where(endpoint))


def follow(source: PagedSource, endpoint: Endpoint, request: Request | None, tally: Tally, number: int) -> Pages:
    """Page `number` and those after it, each answer naming the next."""
    while request is not None:
        answer, problem = checked(source, endpoint, request, _problem_of(source, number, tally.pages))
        tally.received += len(answer.records)
        tally.problem = tally.problem or problem
        if answer.records:
            yield number, answer.records
        request = answer.next
        number += 1


def concurrently(source: PagedSource, endpoint: Endpoint, requests: list[Request],
                 pages: int) -> Iterator[tuple[Answer, str | None]]:
    """(answer, problem or None) of each request (page 1.. of `pages`), in order,
    `concurrency` at a time.

    When a page fails (or the consumer stops), the pages still in flight are abandoned and
    their threads are gone before the error propagates.
    """
    if len(requests) == 1 or source.concurrency == 1:
        for number, request in enumerate(requests, 1):
            yield checked(source, endpoint, request, _problem_of(source, number, pages))
        return
    threads = getattr(source, "page_threads", "psa-page")  # what the threads of pages in flight are called
    executor = ThreadPoolExecutor(max_workers=source.concurrency, thread_name_prefix=threads)
    in_flight: deque[Future] = deque()
    abandon = Abandon()
    try:
        waiting = deque(enumerate(requests, 1))
        while waiting or in_flight:
            while waiting and len(in_flight) < source.concurrency:
                number, request = waiting.popleft()
                in_flight.append(executor.submit(checked, source, endpoint, request,
                                                 _problem_of(source, number, pages), abandon))
            yield in_flight.popleft().result()
    finally:
        abandon()
        for future in in_flight:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


def checked(source: PagedSource, endpoint: Endpoint, request: Request, problem_of: Callable[[Answer], str | None],
            abandon: Abandon | None = None) -> tuple[Answer, str | None]:
    """(answer, problem or None) of one page: a page that comes back shorter than it must (see
    `paging.page_problem`) is asked for again, `PAGE_RETRIES` times."""
    attempt = 0
    while True:
        answer = source.fetch(endpoint, request, abandon)
        problem = problem_of(answer)
        if problem is None or attempt == PAGE_RETRIES:
            return answer, problem
        wait = source.backoff * 2 ** attempt
        attempt += 1
        log.warning("%s: %s; asking again in %.2f s (%d of %d)", source.where(endpoint), problem, wait, attempt,
                    PAGE_RETRIES)
        if abandon is None:
            time.sleep(wait)
        else:
            abandon.wait(wait)  # an abandoned read stops at its next request


def _problem_of(source: PagedSource, number: int, pages: int | None) -> Callable[[Answer], str | None]:
    return lambda answer: page_problem(len(answer.records), source.page_size, number, pages, answer.next is not None)


def _largest_id(records: list, id_field: str) -> int | None:
    ids = [record.get(id_field) for record in records if isinstance(record, Mapping)]
    ids = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
    return max(ids, default=None)
