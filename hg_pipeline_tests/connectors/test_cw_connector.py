"""ConnectWiseConnector against the simulator: streaming, since, retries, errors, rate limit."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

import pytest

from hg_pipeline.connectors import PsaAuthError, PsaUnreachable, build_connector
from hg_pipeline.entities import ALL_ENTITIES, NORMALIZED_FIELDS
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ApiError, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate

EXPECTED_KINDS = {
    "company_types": ("company_types",), "contact_types": ("contact_types",),
    "product_categories": ("categories", "subcategories"), "companies": ("companies",),
    "contacts": ("contacts",), "products": ("catalog",), "members": ("members",), "assets": ("configurations",),
}


def records(connector, entity, **kwargs):
    return [record for page in connector.iter_pages(entity, **kwargs) for record in page]


def test_streams_every_entity_completely(sim, connect):
    connector = connect(sim, page_size=17, concurrency=3)
    assert set(EXPECTED_KINDS) == set(ALL_ENTITIES)
    for entity, kinds in EXPECTED_KINDS.items():
        expected = [r for kind in kinds for r in sim.dataset.records(kind)]
        got = records(connector, entity)
        assert got == expected, entity  # all pages, in order, as the vendor sent them
        for payload in got:
            assert tuple(connector.normalize(entity, payload)) == NORMALIZED_FIELDS[entity]
    assert connector.api_root == sim.base_url + "/v4_6_release/apis/3.0/"
    pages = sim.requests_by_path["/company/contacts"]
    assert pages == 9  # ceil(150 / 17), one request each
    assert sim.requests_by_path["/company/contacts/count"] == 1


def test_pages_are_vendor_pages(sim, connect):
    pages = list(connect(sim, page_size=50).iter_pages("assets"))
    assert [len(p) for p in pages] == [50, 50, 20]


def test_since_filter(sim, connect):
    cutoff = datetime(2025, 6, 1, tzinfo=timezone.utc)
    text = "2025-06-01T00:00:00Z"
    expected = [c["id"] for c in sim.dataset.contacts if c["_info"]["lastUpdated"] > text]
    assert 0 < len(expected) < 150
    got = records(connect(sim, page_size=10), "contacts", since=cutoff)
    assert [c["id"] for c in got] == expected
    naive = records(connect(sim), "contacts", since=cutoff.replace(tzinfo=None))
    assert [c["id"] for c in naive] == expected


def test_since_sees_edits_and_additions(sim, connect):
    connector = connect(sim)
    assert records(connector, "companies", since=datetime(2026, 1, 1, tzinfo=timezone.utc)) == []
    sim.dataset.companies[5]["name"] = "Edited Name LLC"
    sim.dataset.companies[5]["_info"]["lastUpdated"] = "2026-02-01T10:00:00Z"
    added = {**sim.dataset.companies[0], "id": sim.dataset.next_id("companies"), "name": "Brand New Co.",
             "_info": {"dateEntered": "2026-02-02T00:00:00Z", "lastUpdated": "2026-02-02T00:00:00Z"}}
    sim.dataset.companies.append(added)
    changed = records(connector, "companies", since=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert [c["name"] for c in changed] == ["Edited Name LLC", "Brand New Co."]


def test_iter_ids(sim, connect):
    connector = connect(sim, page_size=30)
    assert list(connector.iter_ids("assets")) == [str(c["id"]) for c in sim.dataset.configurations]
    ids = list(connector.iter_ids("product_categories"))
    assert ids[:8] == [f"cat-{i}" for i in range(1, 9)] and ids[8:] == [f"sub-{i}" for i in range(1, 14)]
    removed = sim.dataset.contacts.pop(10)
    assert str(removed["id"]) not in set(connector.iter_ids("contacts"))


def test_rate_limited_429_waited_out(sim, connect):
    sim.fail_next(1, status=429, retry_after=2)
    started = time.monotonic()
    got = records(connect(sim), "members")
    assert time.monotonic() - started >= 2
    assert len(got) == 12


def test_simulator_window_rate_limit_is_survived(sim, connect):
    sim.rate_limit = (4, 1.0)
    got = records(connect(sim, page_size=20, concurrency=4), "contacts")
    assert len(got) == 150


def test_503_retried(sim, connect):
    sim.fail_next(3, status=503)
    assert len(records(connect(sim, page_size=50, concurrency=2), "contacts")) == 150


def test_401_raises_auth_error_without_secrets(sim, connect):
    bad = {**DEMO_CREDENTIALS, "private_key": "definitely-wrong-private-key"}
    connector = connect(sim, credentials=bad)
    with pytest.raises(PsaAuthError) as error:
        records(connector, "companies")
    message = str(error.value)
    assert "401" in message and error.value.status == 401
    for value in bad.values():
        assert value not in message


def test_unreachable_port_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    connector = build_connector("connectwise", f"http://127.0.0.1:{port}", DEMO_CREDENTIALS,
                                max_retries=1, backoff=0.01, timeout=2)
    started = time.monotonic()
    with pytest.raises(PsaUnreachable):
        records(connector, "companies")
    assert time.monotonic() - started < 5


def test_explicit_api_root_skips_discovery(sim):
    connector = build_connector("connectwise", sim.base_url + "/v4_6_release/apis/3.0", DEMO_CREDENTIALS)
    assert len(records(connector, "members")) == 12
    connector.close()


def test_codebase_falls_back_when_company_info_fails(sim, connect):
    original = sim._answer

    def no_company_info(request):
        if request.path.startswith("/login/companyinfo/"):
            raise ApiError(404, "NotFound", "no such page")
        return original(request)

    sim._answer = no_company_info
    connector = connect(sim)
    assert connector.api_root.endswith("/v4_6_release/apis/3.0/")
    assert len(records(connector, "members")) == 12


def test_count_fallback_follows_links(sim, connect):
    connector = connect(sim, page_size=40, max_retries=0)
    sim.fail_next(1, status=500)  # the /count request fails: sequential Link-following instead
    assert [c["id"] for c in records(connector, "contacts")] == [c["id"] for c in sim.dataset.contacts]
    assert sim.requests_by_path["/company/contacts"] == 4


def test_requests_per_second_respected(sim, connect):
    connector = connect(sim, page_size=10, concurrency=4, requests_per_second=10)
    sim.reset_counts()
    started = time.monotonic()
    got = records(connector, "contacts")  # 1 count + 15 pages
    elapsed = time.monotonic() - started
    assert len(got) == 150 and sim.requests == 16
    assert elapsed >= 1.0  # 16 requests at 10 per rolling second need more than a second
    times = sim.request_times
    for i in range(len(times)):
        in_window = sum(1 for t in times[i:] if t - times[i] < 1.0)
        assert in_window <= 10  # never more than 10 in any second


def test_concurrency_speeds_up_slow_pages(connect):
    """Pages really are fetched in parallel (and still come back in order)."""
    with ConnectWiseSimulator(generate("small")) as simulator:
        original = simulator._answer

        def slow_answer(request):
            if "/count" not in request.path:
                time.sleep(0.2)
            return original(request)

        simulator._answer = slow_answer
        started = time.monotonic()
        got = records(connect(simulator, page_size=15, concurrency=5), "contacts")  # 10 pages
        elapsed = time.monotonic() - started
    assert [c["id"] for c in got] == list(range(1, 151))
    assert elapsed < 1.5  # sequential would take >= 2 s


def test_unknown_entity_and_source(sim, connect):
    with pytest.raises(ValueError, match="unknown entity"):
        list(connect(sim).iter_pages("tickets"))
    with pytest.raises(ValueError, match="source import is not supported yet"):
        build_connector("import", sim.base_url, {})


def test_large_configurations_stream_time(connect):
    dataset = generate("large")
    with ConnectWiseSimulator(dataset) as simulator:
        connector = connect(simulator)
        started = time.perf_counter()
        total = sum(len(page) for page in connector.iter_pages("assets"))
        elapsed = time.perf_counter() - started
    print(f"\nstreamed {total} configurations of the large dataset in {elapsed:.2f} s "
          f"(page_size=1000, concurrency=4)")
    assert total == 100_000


def test_records_added_after_the_count_are_still_read(sim, connect):
    original = sim._answer

    def grow_after_count(request):
        answer = original(request)
        if request.path.startswith("/v4_6_release/apis/3.0/system/members/count"):
            for _ in range(25):
                sim.dataset.members.append({**sim.dataset.members[0], "id": sim.dataset.next_id("members")})
        return answer

    sim._answer = grow_after_count
    got = records(connect(sim, page_size=6, concurrency=2), "members")
    assert [m["id"] for m in got] == list(range(1, 38))
