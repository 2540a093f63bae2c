"""The ConnectWise simulator over real HTTP on loopback."""

from __future__ import annotations

import os
import time

import pytest
import requests

from hg_pipeline.simulators.connectwise import API_PREFIX, DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate


def api(sim, path):
    return sim.base_url + API_PREFIX + path


def test_company_info_needs_no_auth(sim):
    response = requests.get(f"{sim.base_url}/login/companyinfo/bluepeak", timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["Codebase"] == "v4_6_release/" and body["CompanyID"] == "bluepeak"
    assert body["VersionCode"] == "v2025.1" and body["IsCloud"] is False


@pytest.mark.parametrize("auth, client_id", [
    (None, None),
    (("bluepeak+demo-public-key", "wrong-private-key"), DEMO_CREDENTIALS["client_id"]),
    (("bluepeak+demo-public-key", "demo-private-key"), None),
    (("bluepeak+demo-public-key", "demo-private-key"), "not-the-client-id"),
])
def test_401_without_right_credentials_and_no_secret_in_body(sim, auth, client_id):
    headers = {"clientId": client_id} if client_id else {}
    response = requests.get(api(sim, "/company/companies"), auth=auth, headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    for secret in ("demo-private-key", "wrong-private-key", "demo-public-key", DEMO_CREDENTIALS["client_id"]):
        assert secret not in response.text


def test_custom_credentials_replace_the_demo_ones(cw):
    creds = {"company_id": "acme", "public_key": "pub", "private_key": "s3cret-value", "client_id": "cid-1"}
    with ConnectWiseSimulator(generate("small"), credentials=creds) as simulator:
        assert cw.get(api(simulator, "/company/companies"), timeout=5).status_code == 401
        ok = requests.get(api(simulator, "/company/companies"), auth=("acme+pub", "s3cret-value"),
                          headers={"clientId": "cid-1"}, timeout=5)
        assert ok.status_code == 200


def test_default_page_size_cap_and_link_headers(sim, cw):
    url = api(sim, "/company/contacts")
    first = cw.get(url, timeout=5)
    assert len(first.json()) == 25  # vendor default page size
    capped = cw.get(url, params={"pageSize": 5000}, timeout=5)
    assert len(capped.json()) == 150
    simulator_small_cap = ConnectWiseSimulator(sim.dataset, max_page_size=40).start()
    try:
        page = cw.get(api(simulator_small_cap, "/company/contacts"), params={"pageSize": 1000}, timeout=5)
        assert len(page.json()) == 40
    finally:
        simulator_small_cap.stop()

    page2 = cw.get(url, params={"pageSize": 40, "page": 2}, timeout=5)
    links = page2.links
    assert set(links) == {"first", "prev", "next", "last"}
    assert links["next"]["url"].endswith("pageSize=40&page=3")
    assert links["last"]["url"].endswith("page=4")
    assert [r["id"] for r in page2.json()] == list(range(41, 81))
    last = cw.get(links["last"]["url"], timeout=5)
    assert set(last.links) == {"first", "prev"} and len(last.json()) == 30
    assert cw.get(url, params={"pageSize": 40, "page": 9}, timeout=5).json() == []


def test_link_keeps_conditions(sim, cw):
    response = cw.get(api(sim, "/company/contacts"),
                      params={"pageSize": 10, "conditions": "inactiveFlag = false"}, timeout=5)
    following = cw.get(response.links["next"]["url"], timeout=5).json()
    assert following and all(not r["inactiveFlag"] for r in following)
    assert following[0]["id"] > response.json()[-1]["id"]


def test_forward_only_pagination(sim, cw):
    url = api(sim, "/company/configurations")
    ids, next_url, params = [], url, {"pageSize": 50}
    while next_url:
        response = cw.get(next_url, params=params, headers={"pagination-type": "forward-only"}, timeout=5)
        assert set(response.links) <= {"next"}
        ids += [r["id"] for r in response.json()]
        next_url, params = response.links.get("next", {}).get("url"), None
    assert ids == [c["id"] for c in sim.dataset.configurations]


def test_conditions_and_count(sim, cw):
    ds = sim.dataset
    cutoff = sorted(c["_info"]["lastUpdated"] for c in ds.companies)[29]
    expected = [c["id"] for c in ds.companies if c["_info"]["lastUpdated"] > cutoff]
    got = cw.get(api(sim, "/company/companies"),
                 params={"conditions": f"lastUpdated > [{cutoff}]", "pageSize": 1000}, timeout=5).json()
    assert [c["id"] for c in got] == expected and len(expected) == 10
    count = cw.get(api(sim, "/company/companies/count"), params={"conditions": f"lastUpdated>=[{cutoff}]"}, timeout=5)
    assert count.json() == {"count": 11}
    assert cw.get(api(sim, "/company/companies/count"), timeout=5).json() == {"count": 40}
    both = cw.get(api(sim, "/company/companies"), params={
        "conditions": "id > 10 and deletedFlag = false and status/name = \"Active\"", "pageSize": 100}, timeout=5)
    assert both.json() and all(c["id"] > 10 and c["status"]["name"] == "Active" for c in both.json())
    inactive = cw.get(api(sim, "/procurement/catalog/count"), params={"conditions": "inactiveFlag=true"}, timeout=5)
    assert inactive.json()["count"] == sum(p["inactiveFlag"] for p in ds.catalog)


@pytest.mark.parametrize("conditions", ["lastUpdated >> [2025-01-01T00:00:00Z]", "name like \"A%\"",
                                        "lastUpdated > [not a date]", "id > 3 or id < 2"])
def test_bad_conditions_are_400(sim, cw, conditions):
    response = cw.get(api(sim, "/company/companies"), params={"conditions": conditions}, timeout=5)
    assert response.status_code == 400
    assert set(response.json()) >= {"code", "message"}


def test_fields_id(sim, cw):
    body = cw.get(api(sim, "/company/contacts"), params={"fields": "id", "pageSize": 1000}, timeout=5).json()
    assert body == [{"id": c["id"]} for c in sim.dataset.contacts]


def test_unknown_path_is_404_json(sim, cw):
    response = cw.get(api(sim, "/company/nonsense"), timeout=5)
    assert response.status_code == 404 and response.json()["code"] == "NotFound"
    assert requests.get(sim.base_url + "/elsewhere", timeout=5).status_code == 404


def test_every_endpoint_and_live_dataset(sim, cw):
    for path, kind in [("/company/companies/types", "company_types"), ("/company/contacts/types", "contact_types"),
                       ("/procurement/categories", "categories"), ("/procurement/subcategories", "subcategories"),
                       ("/procurement/catalog", "catalog"), ("/system/members", "members"),
                       ("/company/configurations/types", "configuration_types")]:
        assert cw.get(api(sim, path), params={"pageSize": 1000}, timeout=5).json() == sim.dataset.records(kind)
        assert cw.get(api(sim, path + "/count"), timeout=5).json() == {"count": len(sim.dataset.records(kind))}
    url = api(sim, "/company/companies")
    sim.dataset.companies.pop(0)
    sim.dataset.companies[0]["name"] = "Renamed Ltd"
    sim.dataset.companies.insert(3, {**sim.dataset.companies[3], "id": 999})  # out of order on purpose
    body = cw.get(url, params={"pageSize": 1000}, timeout=5).json()
    assert body[0]["name"] == "Renamed Ltd" and body[-1]["id"] == 999 and len(body) == 40
    assert [r["id"] for r in body] == sorted(r["id"] for r in body)


def test_fail_next_and_counters(sim, cw):
    sim.fail_next(2, status=503)
    url = api(sim, "/system/members")
    statuses = [cw.get(url, timeout=5).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert sim.requests == 3 and sim.requests_by_path == {"/system/members": 3}
    sim.reset_counts()
    assert sim.requests == 0
    sim.fail_next(1, status=429, retry_after=3)
    response = cw.get(url, timeout=5)
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"


def test_rate_limit_answers_429_with_retry_after(sim, cw):
    sim.rate_limit = (3, 2.0)
    url = api(sim, "/system/members")
    statuses = [cw.get(url, timeout=5) for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    limited = statuses[3]
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    assert limited.json()["code"] == "TooManyRequests"
    sim.rate_limit = None
    assert cw.get(url, timeout=5).status_code == 200


def test_pyconnectwise_reads_the_simulator_over_https(monkeypatch):
    """The vendor's public client hardcodes https://, so the simulator serves TLS for it."""
    pyconnectwise = pytest.importorskip("pyconnectwise")
    with ConnectWiseSimulator(generate("small"), tls=True) as simulator:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_file)
        creds = DEMO_CREDENTIALS
        client = pyconnectwise.ConnectWiseManageAPIClient(
            creds["company_id"], f"127.0.0.1:{simulator.port}", creds["client_id"], creds["public_key"],
            creds["private_key"])
        assert client.codebase == "v4_6_release/"
        companies = list(client.company.companies.paginated(1, 15).all())  # follows the Link headers
        assert [c.name for c in companies] == [c["name"] for c in simulator.dataset.companies]
        assert client.company.contacts.count.get().count == 150
        assert len(client.procurement.catalog.get(params={"pageSize": 1000})) == 60
        assert len(client.system.members.get(params={"pageSize": 1000})) == 12
        configurations = client.company.configurations.get(params={"pageSize": 1000})
        assert len(configurations) == 120 and configurations[0].type.name
        assert [t.description for t in client.company.contacts.types.get()][:2] == ["Billing", "End User"]
        assert os.path.exists(simulator.ca_file)


def test_requests_served_quickly(sim, cw):
    started = time.perf_counter()
    for _ in range(20):
        assert cw.get(api(sim, "/company/configurations"), params={"pageSize": 1000}, timeout=5).status_code == 200
    assert time.perf_counter() - started < 10


def test_stop_closes_keep_alive_connections(cw):
    simulator = ConnectWiseSimulator(generate("small")).start()
    url = api(simulator, "/system/members")
    assert cw.get(url, timeout=5).status_code == 200  # the session now holds a pooled connection
    simulator.stop()
    with pytest.raises(requests.ConnectionError):
        cw.get(url, timeout=5)
