"""The Autotask connector reads Services as products: ids "svc-" + the service id, the PSA
category "Services" (listed among the product categories), in the id sweep, in quarantine."""

from __future__ import annotations

import pytest

from hg_pipeline.connectors import build_connector
from hg_pipeline.connectors.records import RecordError
from hg_pipeline.simulators.autotask import DEMO_CREDENTIALS, AutotaskSimulator
from hg_pipeline.simulators.autotask_billing import service_id
from hg_pipeline.simulators.datasets import generate


@pytest.fixture
def connector():
    with AutotaskSimulator(generate("small", seed=1)) as simulator:
        with build_connector("autotask", simulator.base_url, DEMO_CREDENTIALS, page_size=7, backoff=0.02) as made:
            yield simulator, made


def _read(connector, entity):
    return [connector.normalize(entity, payload) for page in connector.iter_pages(entity) for payload in page]


def test_services_are_products_apart_from_the_products(connector):
    sim, connector = connector
    rows = {r["psa_id"]: r for r in _read(connector, "products")}
    recurring = [p for p in sim.dataset.catalog if p.get("recurringFlag")]
    services = {f"svc-{service_id(p['id'])}": p for p in recurring}
    assert set(rows) == {str(p["id"]) for p in sim.dataset.catalog} | set(services)
    for psa_id, item in services.items():
        row = rows[psa_id]
        assert (row["name"], row["price"], row["cost"]) == (item["description"], item["price"], item["cost"])
        assert (row["category"], row["subcategory"], row["sku"], row["product_class"]) == \
            ("Services", None, None, "Service")
    assert sorted(connector.iter_ids("products")) == sorted(rows)
    categories = {r["path"] for r in _read(connector, "product_categories")}
    assert "Services" in categories
    assert connector.supports_incremental("products") is False  # Products have no modified field


def test_a_bad_service_is_refused_under_its_own_id(connector):
    sim, connector = connector
    item = next(p for p in sim.dataset.catalog if p.get("recurringFlag"))
    refused = []
    for page in connector.iter_pages("products"):
        for payload in page:
            if payload.get("id") == service_id(item["id"]):
                payload = dict(payload, unitPrice="twelve")
                with pytest.raises(RecordError, match=r"^service svc-\d+: unitPrice"):
                    connector.normalize("products", payload)
                refused.append(connector.payload_id(payload))
            elif payload.get("id") == item["id"]:
                assert connector.payload_id(payload) == str(item["id"])
    assert refused == [f"svc-{service_id(item['id'])}"]


def test_contract_lines_name_the_service(connector):
    sim, connector = connector
    products = {r["psa_id"] for r in _read(connector, "products")}
    lines = _read(connector, "spend")
    assert lines and all(line["product_psa_id"].startswith("svc-") and line["product_psa_id"] in products
                         for line in lines)
