"""The Autotask simulator's Services: the recurring catalog as an entity of its own, with ids
apart from the products', that the contracts' service units reference."""

from __future__ import annotations

import pytest
import requests

from hg_pipeline.simulators.autotask import AutotaskSimulator
from hg_pipeline.simulators.datasets import generate
from hg_pipeline_tests.simulators.test_autotask_simulator import HEADERS, query, query_all, zone


@pytest.fixture
def at():
    with AutotaskSimulator(generate("small", seed=1)) as simulator:
        yield simulator


def test_services_are_the_recurring_catalog_with_ids_of_their_own(at):
    recurring = [p for p in at.dataset.catalog if p.get("recurringFlag")]
    services = query_all(at, "Services", {"filter": [{"op": "gte", "field": "id", "value": 0}], "MaxRecords": 7})
    assert len(services) == len(recurring) >= 8  # several pages
    assert [(s["name"], s["unitPrice"], s["isActive"]) for s in services] == \
        [(p["description"], p["price"], not p.get("inactiveFlag")) for p in recurring]
    product_ids = {p["id"] for p in query_all(at, "Products", {"filter": []})}
    service_ids = [s["id"] for s in services]
    assert service_ids == sorted(service_ids) and not set(service_ids) & product_ids
    assert {"serviceLevelAgreementID", "billingCodeID", "periodType", "lastModifiedDate"} <= set(services[0])
    assert "productCategory" not in services[0]  # Autotask services have no category
    count = requests.post(f"{zone(at)}v1.0/Services/query/count", json={"filter": []}, headers=HEADERS, timeout=5)
    assert count.json() == {"queryCount": len(recurring)}
    # a GET query pages the same way
    search = '{"filter": [{"op": "gt", "field": "id", "value": %d}]}' % service_ids[-3]
    got = requests.get(f"{zone(at)}v1.0/Services/query", params={"search": search}, headers=HEADERS, timeout=5)
    assert [s["id"] for s in got.json()["items"]] == service_ids[-2:]
    fields = requests.get(f"{zone(at)}v1.0/Services/entityInformation/fields", headers=HEADERS, timeout=5).json()
    assert "unitPrice" in {f["name"] for f in fields["fields"]}


def test_contract_service_units_reference_the_services(at):
    services = {s["id"]: s for s in query_all(at, "Services", {"filter": []})}
    units = query_all(at, "ContractServiceUnits", {"filter": []})
    assert units and all(unit["serviceID"] in services for unit in units)
    by_addition = {a["id"]: a for a in at.dataset.agreement_additions}
    some = units[0]
    assert services[some["serviceID"]]["name"] == by_addition[some["id"]]["product"]["description"]
    assert query(at, "Services", {"filter": [{"op": "eq", "field": "productCategory", "value": 1}]}).status_code == 500
