"""The Autotask simulator over real HTTP on loopback: zone lookup, header auth, query filters,
nextPageUrl paging, picklists, the thread and hourly limits."""

from __future__ import annotations

import threading

import pytest
import requests

from hg_pipeline.simulators.autotask import DEMO_CREDENTIALS, ZONE_LOOKUP, AutotaskSimulator
from hg_pipeline.simulators.datasets import generate

HEADERS = {"ApiIntegrationCode": DEMO_CREDENTIALS["integration_code"], "UserName": DEMO_CREDENTIALS["username"],
           "Secret": DEMO_CREDENTIALS["secret"], "Content-Type": "application/json"}


@pytest.fixture
def at():
    with AutotaskSimulator(generate("small", seed=1)) as simulator:
        yield simulator


def zone(sim) -> str:
    response = requests.get(sim.base_url + ZONE_LOOKUP, params={"user": DEMO_CREDENTIALS["username"]}, timeout=5)
    assert response.status_code == 200
    return response.json()["url"]


def query(sim, entity, body=None, url=None, headers=HEADERS):
    response = requests.post(url or f"{zone(sim)}v1.0/{entity}/query", json=body or {"filter": []},
                             headers=headers, timeout=5)
    return response


def query_all(sim, entity, body) -> list[dict]:
    records, url = [], None
    while True:
        response = query(sim, entity, body, url)
        assert response.status_code == 200, response.text
        page = response.json()
        records += page["items"]
        assert page["pageDetails"]["count"] == len(page["items"])
        url = page["pageDetails"]["nextPageUrl"]
        if url is None:
            return records


def test_zone_lookup_needs_no_auth_and_points_elsewhere(at):
    url = zone(at)
    assert url == f"{at.base_url}/zone5/atservicesrest/"
    unknown = requests.get(at.base_url + ZONE_LOOKUP, params={"user": "nobody@example.com"}, timeout=5)
    assert unknown.status_code == 500 and unknown.json()["errors"]
    # the entity paths live only under the zone's URL
    wrong = requests.post(f"{at.base_url}/atservicesrest/v1.0/Companies/query", json={"filter": []},
                          headers=HEADERS, timeout=5)
    assert wrong.status_code == 404


def test_every_call_needs_the_three_headers(at):
    for missing in ("ApiIntegrationCode", "UserName", "Secret"):
        headers = {k: v for k, v in HEADERS.items() if k != missing}
        response = query(at, "Companies", headers=headers)
        assert response.status_code == 401 and response.json()["errors"]
        assert DEMO_CREDENTIALS["secret"] not in response.text
    assert query(at, "Companies", headers=dict(HEADERS, Secret="s3cret-wrong")).status_code == 401


def test_paging_by_next_page_url_covers_every_record_once(at):
    contacts = query_all(at, "Contacts", {"filter": [{"op": "gte", "field": "id", "value": 0}], "MaxRecords": 40})
    assert [c["id"] for c in contacts] == [c["id"] for c in at.dataset.contacts]
    assets = query_all(at, "ConfigurationItems", {"filter": [], "MaxRecords": 500})
    assert len(assets) == len(at.dataset.configurations)
    count = requests.post(f"{zone(at)}v1.0/Contacts/query/count", json={"filter": []}, headers=HEADERS, timeout=5)
    assert count.json() == {"queryCount": len(at.dataset.contacts)}
    too_many = query(at, "Contacts", {"filter": [], "MaxRecords": 501})
    assert too_many.status_code == 500 and "MaxRecords" in too_many.json()["errors"][0]


def test_filters_groups_and_include_fields(at):
    customer = next(t["id"] for t in at.dataset.company_types if t["name"] == "Customer")
    want = {c["id"] for c in at.dataset.companies if c["types"][0]["name"] == "Customer"}
    got = query_all(at, "Companies", {"filter": [{"op": "eq", "field": "companyType", "value": customer}],
                                      "IncludeFields": ["id", "companyName"]})
    assert {c["id"] for c in got} == want and set(got[0]) == {"id", "companyName"}
    either = {"op": "or", "items": [{"op": "in", "field": "id", "value": [1, 2]},
                                    {"op": "and", "items": [{"op": "gt", "field": "id", "value": 38},
                                                            {"op": "lte", "field": "id", "value": 39}]}]}
    assert [c["id"] for c in query_all(at, "Companies", {"filter": [either]})] == [1, 2, 39]
    assert query(at, "Companies", {"filter": [{"op": "eq", "field": "nope", "value": 1}]}).status_code == 500


def test_incremental_filter_sees_edits_on_the_modified_date(at):
    company = at.dataset.companies[4]
    with at.lock:
        company["name"] = "Renamed Dental Group"
        company["_info"] = dict(company["_info"], lastUpdated="2026-02-01T00:00:00Z")
    changed = query_all(at, "Companies", {"filter": [
        {"op": "gt", "field": "lastTrackedModifiedDateTime", "value": "2026-01-15T00:00:00.000Z"}]})
    assert [(c["id"], c["companyName"]) for c in changed] == [(company["id"], "Renamed Dental Group")]
    # Products and Resources carry no modified date
    product = query_all(at, "Products", {"filter": [], "MaxRecords": 1})[0]
    assert not {"lastModifiedDate", "lastActivityDate", "lastModifiedTime"} & set(product)


def test_same_names_and_picklists_as_the_connectwise_records(at):
    fields = requests.get(f"{zone(at)}v1.0/Companies/entityInformation/fields", headers=HEADERS, timeout=5).json()
    company_type = next(f for f in fields["fields"] if f["name"] == "companyType")
    assert company_type["isPickList"]
    labels = {int(v["value"]): v["label"] for v in company_type["picklistValues"]}
    assert labels == {t["id"]: t["name"] for t in at.dataset.company_types}
    companies = query_all(at, "Companies", {"filter": []})
    assert [labels[c["companyType"]] for c in companies] == [c["types"][0]["name"] for c in at.dataset.companies]
    fields = requests.get(f"{zone(at)}v1.0/Products/entityInformation/fields", headers=HEADERS, timeout=5).json()
    category = next(f for f in fields["fields"] if f["name"] == "productCategory")
    assert [v["label"] for v in category["picklistValues"]] == [c["name"] for c in at.dataset.categories]
    products = query_all(at, "Products", {"filter": []})
    assert [p["name"] for p in products] == [p["description"] for p in at.dataset.catalog]
    members = query_all(at, "Resources", {"filter": []})
    assert [m["email"] for m in members] == [m["primaryEmail"] for m in at.dataset.members]


def test_thread_limit_per_integration_and_entity(at):
    at.latency = 0.5
    results: list[requests.Response] = []

    def call():
        results.append(query(at, "Companies", {"filter": [], "MaxRecords": 1},
                             url=f"{at.api_url}/Companies/query"))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    other = query(at, "Contacts", {"filter": [], "MaxRecords": 1}, url=f"{at.api_url}/Contacts/query")
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 200, 500]
    rejected = next(r for r in results if r.status_code == 500)
    assert "Thread Threshold Exceeded" in rejected.json()["errors"][0]
    assert other.status_code == 200  # another entity has its own threads


def test_hourly_limit_answers_429_with_retry_after():
    with AutotaskSimulator(generate("small"), rate_limit=(2, 3600)) as sim:
        statuses = [query(sim, "Resources") for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert int(statuses[-1].headers["Retry-After"]) > 3000 and statuses[-1].json()["errors"]
    with AutotaskSimulator(generate("small")) as sim:
        assert sim.rate_limit == (10000, 3600.0)


def test_shared_controls(at):
    at.short_page("/Contacts/query", 1, keep=2, first=1)
    assert len(query(at, "Contacts", {"filter": []}).json()["items"]) == 2
    at.fail_next(1, 503)
    assert query(at, "Contacts").status_code == 503
    at.malformed["contacts"] = [{"firstName": "no id"}]
    page = query(at, "Contacts", {"filter": [], "MaxRecords": 500}).json()
    assert page["items"][-1] == {"firstName": "no id"}
    assert at.requests_by_path["/Contacts/query"] == 3
