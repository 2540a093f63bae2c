"""The HaloPSA simulator over real HTTP on loopback: OAuth2 tokens, paging, limits, and every
record it serves checked against the vendor's OpenAPI component schemas."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest
import requests

from hg_pipeline.simulators.datasets import generate
from hg_pipeline.simulators.halopsa import CUSTOMER_TYPE_LOOKUP, DEMO_CREDENTIALS, HaloPsaSimulator

# The vendor's record schemas, cut from ../shared/vendor-specs/halopsa-openapi-subset.json and kept
# here (see its info.x-provenance) so the test needs nothing outside the repository.
SPEC = Path(__file__).resolve().parent / "halopsa-record-schemas.json"


def _json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a null type, refs stay local."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "format", "example")}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif "$ref" in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@pytest.fixture(scope="module")
def validators():
    spec = json.loads(SPEC.read_text())
    schemas = {name: _json_schema(schema) for name, schema in spec["components"]["schemas"].items()}
    root = {"components": {"schemas": schemas}}

    def validator(name):
        return jsonschema.Draft7Validator({**root, "$ref": f"#/components/schemas/{name}"})

    return validator


@pytest.fixture
def halo():
    with HaloPsaSimulator(generate("small", seed=1)) as simulator:
        yield simulator


def token(sim, **form) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": DEMO_CREDENTIALS["client_id"],
            "client_secret": DEMO_CREDENTIALS["client_secret"], "scope": "all", **form}
    return requests.post(f"{sim.base_url}/auth/token", data=data, timeout=5)


@pytest.fixture
def session(halo):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + token(halo).json()["access_token"]
    yield s
    s.close()


def get(session, sim, path, **params):
    response = session.get(f"{sim.base_url}/api{path}", params=params, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def all_pages(session, sim, path, key, page_size=7, **params):
    records, page = [], 1
    while True:
        body = get(session, sim, path, pageinate="true", page_size=page_size, page_no=page, **params)
        records += body[key]
        if page * page_size >= body["record_count"]:
            return records, body["record_count"]
        page += 1


def test_token_is_issued_for_the_right_client_only(halo):
    ok = token(halo)
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "all"
    wrong = token(halo, client_secret="s3cret-wrong")
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client"}
    assert "s3cret" not in wrong.text
    assert token(halo, grant_type="password").status_code == 400
    assert halo.token_requests == 3


def test_tenant_is_required_when_configured_as_form_field_or_query():
    creds = dict(DEMO_CREDENTIALS, tenant="bluepeak")
    with HaloPsaSimulator(generate("small"), credentials=creds) as sim:
        assert token(sim).status_code == 401
        assert token(sim, tenant="other").status_code == 401
        assert token(sim, tenant="bluepeak").status_code == 200
        data = {"grant_type": "client_credentials", "client_id": creds["client_id"],
                "client_secret": creds["client_secret"], "scope": "all"}
        assert requests.post(f"{sim.base_url}/auth/token?tenant=bluepeak", data=data, timeout=5).status_code == 200


def test_api_needs_a_live_bearer_token(halo):
    url = f"{halo.base_url}/api/Client"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer made-up"}, timeout=5).status_code == 401
    halo.token_lifetime = 1
    short = token(halo).json()
    assert short["expires_in"] == 1
    headers = {"Authorization": f"Bearer {short['access_token']}"}
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    time.sleep(1.1)
    expired = requests.get(url, headers=headers, timeout=5)
    assert expired.status_code == 401 and "token" in expired.text
    assert halo.requests_by_path["/Client"] == 4


def test_paging_counts_and_covers_every_record_once(halo, session):
    dataset = halo.dataset
    clients, count = all_pages(session, halo, "/Client", "clients", includeinactive="true")
    live = [c for c in dataset.companies if not c.get("deletedFlag")]
    assert count == len(live) == len(clients)
    assert [c["id"] for c in clients] == sorted(c["id"] for c in live)
    users, count = all_pages(session, halo, "/Users", "users", page_size=13, includeinactive="true")
    assert count == len(dataset.contacts) and len({u["id"] for u in users}) == len(dataset.contacts)
    items, _ = all_pages(session, halo, "/Item", "items", page_size=50, includeinactive="true")
    assets, _ = all_pages(session, halo, "/Asset", "assets", page_size=500, includeinactive="true")
    assert len(items) == len(dataset.catalog) and len(assets) == len(dataset.configurations)
    # 1-based page numbers; a page past the end is empty but still counts
    beyond = get(session, halo, "/Client", pageinate="true", page_size=10, page_no=99, includeinactive="true")
    assert beyond == {"record_count": len(live), "clients": []}


def test_same_names_types_and_emails_as_the_connectwise_records(halo, session):
    dataset = halo.dataset
    clients = {c["id"]: c for c in get(session, halo, "/Client", includeinactive="true")["clients"]}
    for company in dataset.companies:
        assert clients[company["id"]]["name"] == company["name"]
        assert clients[company["id"]]["customertype_new"] == company["types"][0]["name"]
    types = get(session, halo, "/Lookup", lookupid=CUSTOMER_TYPE_LOOKUP)
    assert [t["name"] for t in types] == [t["name"] for t in dataset.company_types]
    assert get(session, halo, "/Lookup", lookupid=1) == []
    roles = get(session, halo, "/Roles")
    assert [r["name"] for r in roles] == [t["description"] for t in dataset.contact_types]
    users = {u["id"]: u for u in get(session, halo, "/Users", includeinactive="true")["users"]}
    contact = next(c for c in dataset.contacts if c["types"] and c["communicationItems"])
    assert users[contact["id"]]["roles"][0]["name"] == contact["types"][0]["name"]
    assert users[contact["id"]]["emailaddress"] == contact["communicationItems"][0]["value"]
    groups = get(session, halo, "/AssetGroup")
    assert [g["name"] for g in groups] == [c["name"] for c in dataset.categories]
    laptops = next(s for s in dataset.subcategories if s["name"] == "Laptops")
    items = get(session, halo, "/Item", includeinactive="true")["items"]
    laptop = next(i for i in items if i["assettype_id"] == laptops["id"])
    assert laptop["assetgroup_name"] == "Hardware" and laptop["assettype_name"] == "Laptops"


def test_inactive_rows_only_on_request(halo, session):
    dataset = halo.dataset
    inactive_users = sum(1 for c in dataset.contacts if c["inactiveFlag"])
    assert inactive_users
    assert get(session, halo, "/Users")["record_count"] == len(dataset.contacts) - inactive_users
    disabled = sum(1 for m in dataset.members if m["inactiveFlag"])
    assert len(get(session, halo, "/Agent")) == len(dataset.members) - disabled
    assert len(get(session, halo, "/Agent", includedisabled="true")) == len(dataset.members)


def test_idonly_sweeps_every_id_unpaged(halo, session):
    body = get(session, halo, "/Asset", idonly="true", includeinactive="true", pageinate="true", page_size=5)
    assert body["assets"] == [{"id": c["id"]} for c in halo.dataset.configurations]


def test_edits_move_the_last_update_stamps_and_deletions_vanish(halo, session):
    company, gone = halo.dataset.companies[0], halo.dataset.companies[1]
    with halo.lock:
        company["name"] = "Renamed Dental Group"
        company["_info"] = dict(company["_info"], lastUpdated="2026-02-01T00:00:00Z")
        halo.dataset.companies.remove(gone)
    clients = {c["id"]: c for c in get(session, halo, "/Client", includeinactive="true")["clients"]}
    assert clients[company["id"]]["alastupdate"] == "2026-02-01T00:00:00Z"
    assert clients[company["id"]]["name"] == "Renamed Dental Group"
    assert gone["id"] not in clients


def test_rate_limit_answers_429_with_retry_after(session):
    with HaloPsaSimulator(generate("small"), rate_limit=(3, 60)) as sim:
        session.headers["Authorization"] = "Bearer " + token(sim).json()["access_token"]
        statuses = [session.get(f"{sim.base_url}/api/Agent", timeout=5) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert statuses[-1].text == "Rate Limit Reached - 3 Requests per rolling 1 minute window"
        assert 1 <= int(statuses[-1].headers["Retry-After"]) <= 60
    with HaloPsaSimulator(generate("small")) as sim:
        assert sim.rate_limit == (300, 300.0)  # hosted Halo by default


def test_shared_controls_short_pages_lies_and_failures(halo, session):
    halo.short_page("/Client", 2, keep=1, first=1)
    halo.lie_about_count("/Client", 3)
    body = get(session, halo, "/Client", pageinate="true", page_size=10, page_no=2, includeinactive="true")
    assert len(body["clients"]) == 1 and body["record_count"] == 43
    halo.fail_next(1, 503)
    assert session.get(f"{halo.base_url}/api/Client", timeout=5).status_code == 503
    halo.malformed["companies"] = [{"name": "no id"}]
    body = get(session, halo, "/Client", pageinate="true", page_size=50, page_no=1, includeinactive="true")
    assert body["clients"][-1] == {"name": "no id"}


def test_every_served_record_follows_the_vendor_schema(halo, session, validators):
    checks = [
        ("Area", get(session, halo, "/Client", includeinactive="true")["clients"]),
        ("Users", get(session, halo, "/Users", includeinactive="true")["users"]),
        ("Item", get(session, halo, "/Item", includeinactive="true")["items"]),
        ("Uname", get(session, halo, "/Agent", includedisabled="true")),
        ("Device", get(session, halo, "/Asset", includeinactive="true")["assets"]),
        ("Generic", get(session, halo, "/AssetGroup")),
        ("Xtype", get(session, halo, "/AssetType")),
        ("Lookup", get(session, halo, "/Lookup", lookupid=CUSTOMER_TYPE_LOOKUP)),
        ("UserRoles", get(session, halo, "/Roles")),
    ]
    for schema, records in checks:
        assert records, schema
        validator = validators(schema)
        for record in records:
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(record)]
            assert not errors, (schema, record["id"], errors[:3])
