"""The paging strategies of `paginators.py`, each against a real simulator through the connector
that uses it, and the keyset id sweep that a deletion during it cannot shift."""

from __future__ import annotations

import pytest

from hg_pipeline.connectors import autotask, build_connector, connectwise, halopsa
from hg_pipeline.connectors.base import Endpoint, ResumeRefused
from hg_pipeline.connectors.paginators import PAGINATORS, Request, read
from hg_pipeline.connectors.paging import IncompleteExtraction
from hg_pipeline.simulators.datasets import generate
from hg_pipeline_tests.connectors.conformance import demo_credentials, start_simulator

COMPANIES = "/company/companies"  # ConnectWise's, below the API prefix


@pytest.fixture
def psa():
    """psa(name) -> (simulator, connect(**options)) on the small dataset; all stopped afterwards."""
    started, made = [], []

    def start(name):
        simulator = start_simulator(name, generate("small", seed=1))
        started.append(simulator)

        def connect(**options):
            options.setdefault("backoff", 0.02)
            connector = build_connector(name, simulator.base_url, demo_credentials(name), **options)
            made.append(connector)
            return connector

        return simulator, connect

    yield start
    for connector in made:
        connector.close()
    for simulator in started:
        simulator.stop()


def _ids(pages) -> list[int]:
    return [record["id"] for _, page in pages for record in page]


def _live(simulator, kind="companies") -> list[int]:
    return sorted(record["id"] for record in simulator.dataset.records(kind))


def _cw(paginator: str) -> Endpoint:
    return Endpoint("companies", "company/companies", paginator=paginator)


def _cw_request(connector, **params) -> Request:
    return Request(connector.api_root + "company/companies", {"orderBy": "id asc", "pageSize": 7, **params})


def test_the_strategies_are_registered_by_the_names_endpoints_use():
    assert set(PAGINATORS) == {"counted_pages", "link_header", "next_url", "numbered_pages", "keyset_by_id", "whole"}
    named = {name for endpoints in (*connectwise.ENDPOINTS.values(), *halopsa.ENDPOINTS.values())
             for endpoint in endpoints for name in (endpoint.paginator, endpoint.sweep) if name}
    named |= {name for endpoint in autotask.ENDPOINTS.values() for name in (endpoint.paginator, endpoint.sweep)
              if name and name not in ("picklist", "udf_values")}  # Autotask's own derived readers
    assert named <= set(PAGINATORS)
    with pytest.raises(ValueError, match="no paginator 'pages_by_guess'"):
        list(read(None, [_cw("pages_by_guess")], lambda endpoint: None))


def test_counted_pages_reads_the_count_then_pages_in_flight_yielded_in_order(psa):
    simulator, connect = psa("connectwise")
    connector = connect(page_size=7, concurrency=4)
    simulator.reset_counts()
    pages = list(read(connector, [_cw("counted_pages")], lambda endpoint: _cw_request(connector)))
    assert _ids(pages) == _live(simulator)
    assert [len(page) for _, page in pages] == [7] * 5 + [5]
    assert simulator.requests_by_path == {COMPANIES + "/count": 1, COMPANIES: 6}
    # each page resumes after its last id
    _, third = pages[2]
    rest = list(read(connector, [_cw("counted_pages")], lambda endpoint: _cw_request(connector), resume=third.resume))
    assert _ids(rest) == _live(simulator)[21:]


def test_link_header_follows_the_links_without_a_count(psa):
    simulator, connect = psa("connectwise")
    connector = connect(page_size=7)
    simulator.reset_counts()
    pages = list(read(connector, [_cw("link_header")], lambda endpoint: _cw_request(connector)))
    assert _ids(pages) == _live(simulator)
    assert simulator.requests_by_path == {COMPANIES: 6}
    simulator.short_page(COMPANIES, 2, keep=3)  # a short page that links on is not the last
    with pytest.raises(IncompleteExtraction, match="page 2 came back with 3 of 7 records but links to a next page"):
        list(read(connector, [_cw("link_header")], lambda endpoint: _cw_request(connector)))


def test_keyset_by_id_asks_for_the_ids_above_the_last_one(psa):
    simulator, connect = psa("connectwise")
    connector = connect(page_size=7)
    simulator.short_page(COMPANIES, 1, keep=3, first=1)  # every keyset request is the vendor's page 1
    simulator.reset_counts()
    pages = list(read(connector, [_cw("keyset_by_id")], lambda endpoint: _cw_request(connector)))
    assert _ids(pages) == _live(simulator)  # the short first page is taken up where it ended, not asked again
    assert [len(page) for _, page in pages] == [3, 7, 7, 7, 7, 7, 2]
    # page 7, short and past the 6 the count makes, ends the read without one more request
    assert simulator.requests_by_path == {COMPANIES + "/count": 1, COMPANIES: 7}
    _, second = pages[1]
    rest = list(read(connector, [_cw("keyset_by_id")], lambda endpoint: _cw_request(connector),
                     resume=second.resume))
    assert _ids(rest) == _live(simulator)[10:]


def test_keyset_by_id_is_incomplete_short_of_the_count(psa):
    simulator, connect = psa("connectwise")
    simulator.lie_about_count(COMPANIES, 5)
    with pytest.raises(IncompleteExtraction, match="received 40 of the 45 the PSA counts"):
        list(connect().iter_ids("companies"))


@pytest.mark.parametrize("name, module", [("connectwise", connectwise), ("autotask", autotask)])
def test_a_deletion_during_the_id_sweep_pushes_no_live_id_out(psa, monkeypatch, name, module):
    monkeypatch.setattr(module, "MAX_PAGE_SIZE", 7)  # the sweep's pages: 40 companies in 6 of them
    simulator, connect = psa(name)
    records = simulator.dataset.records("companies")
    before = [str(i) for i in _live(simulator)]
    sweep = connect(page_size=7).iter_ids("companies", previous=len(records))
    first = next(sweep)  # page 1 has been read, page 2 not yet asked for
    with simulator.lock:
        del records[:2]  # two records of page 1 go: page numbers would now start 2 records later
    swept = [first, *sweep]
    assert swept == before  # every id live through the sweep (and those read before they went), in id order
    # Paging by number instead, the same deletion pushes two live companies out, unnoticed
    # (the recount agrees with what came back).
    if name == "connectwise":
        connector = connect(page_size=7, concurrency=1)  # no page in flight yet when page 1 is read
        records = simulator.dataset.records("companies")
        pages = read(connector, [_cw("counted_pages")], lambda endpoint: _cw_request(connector, fields="id"))
        first_page = next(pages)
        with simulator.lock:
            del records[:2]
        by_number = _ids([first_page, *pages])
        assert set(_live(simulator)) - set(by_number) == {int(i) for i in before[9:11]}


def test_numbered_pages_take_the_count_from_the_body_and_resume_by_page(psa):
    simulator, connect = psa("halopsa")
    connector = connect(page_size=7)
    endpoint = halopsa.ENDPOINTS["companies"][0]

    def request(endpoint):
        return Request("api/Client", {"includeinactive": "true", "pageinate": "true", "page_size": 7})

    simulator.reset_counts()
    pages = list(read(connector, [endpoint], request))
    assert _ids(pages) == _live(simulator)
    assert simulator.requests_by_path == {"/Client": 6}  # record_count came with each page
    _, second = pages[1]
    assert _ids(read(connector, [endpoint], request, resume=second.resume)) == _live(simulator)[14:]
    with simulator.lock:
        del simulator.dataset.records("companies")[0]  # page 2 now ends one record later
    with pytest.raises(ResumeRefused, match="page 2 of Client moved since it was read"):
        list(read(connector, [endpoint], request, resume=second.resume))


def test_whole_reads_a_list_in_one_request_and_cannot_resume(psa):
    simulator, connect = psa("halopsa")
    connector = connect()
    endpoint = halopsa.ENDPOINTS["members"][0]

    def request(endpoint):
        return Request("api/Agent", {"includedisabled": "true"})

    simulator.reset_counts()
    pages = list(read(connector, [endpoint], request))
    assert len(pages) == 1 and pages[0][1].resume is None
    assert len(pages[0][1]) == len(simulator.dataset.members)
    assert simulator.requests_by_path == {"/Agent": 1}
    with pytest.raises(ResumeRefused):
        list(read(connector, [endpoint], request, resume='{"endpoint": 0, "after": 3}'))


def test_next_url_counts_then_follows_the_next_page_url_with_the_same_body(psa):
    simulator, connect = psa("autotask")
    connector = connect(page_size=7)
    endpoint = autotask.ENDPOINTS["companies"]

    def request(endpoint):
        return Request(connector.api_root + "Companies/query",
                       body={"filter": [autotask.EVERY_RECORD], "MaxRecords": 7, "IncludeFields": ["id"]})

    simulator.reset_counts()
    pages = list(read(connector, [endpoint], request))
    assert _ids(pages) == _live(simulator)
    assert all(set(record) == {"id"} for _, page in pages for record in page)  # the body went with every page
    assert simulator.requests_by_path == {"/Companies/query/count": 1, "/Companies/query": 6}
    _, fourth = pages[3]
    assert _ids(read(connector, [endpoint], request, resume=fourth.resume)) == _live(simulator)[28:]
