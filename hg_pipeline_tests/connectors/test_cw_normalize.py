"""ConnectWiseConnector.normalize: vendor payload -> normalized record, or RecordError."""

from __future__ import annotations

import copy

import pytest

from hg_pipeline.connectors import RecordError, build_connector
from hg_pipeline.entities import NORMALIZED_FIELDS
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS
from hg_pipeline.simulators.datasets import generate

DATASET = generate("small", seed=1)
KINDS = {"company_types": "company_types", "contact_types": "contact_types", "companies": "companies",
         "contacts": "contacts", "products": "catalog", "members": "members", "assets": "configurations"}


@pytest.fixture(scope="module")
def cw():
    connector = build_connector("connectwise", "http://127.0.0.1:9", DEMO_CREDENTIALS)  # no request is made
    yield connector
    connector.close()


def test_every_generated_record_normalizes(cw):
    for entity, kind in KINDS.items():
        for payload in DATASET.records(kind):
            record = cw.normalize(entity, payload)
            assert tuple(record) == NORMALIZED_FIELDS[entity]
            assert record["psa_id"] == str(payload["id"])
    for payload in DATASET.categories + DATASET.subcategories:
        assert tuple(cw.normalize("product_categories", payload)) == NORMALIZED_FIELDS["product_categories"]


def test_company(cw):
    payload = {"id": 7, "identifier": "SterlingWealth", "name": "Sterling Wealth Advisors",
               "status": {"id": 1, "name": "Active"}, "types": [{"id": 1, "name": "Customer"}, {"id": 4, "name": "Partner"}],
               "deletedFlag": True, "_info": {}}
    assert cw.normalize("companies", payload) == {
        "psa_id": "7", "name": "Sterling Wealth Advisors", "identifier": "SterlingWealth",
        "types": ["Customer", "Partner"], "status": "Active", "deleted": True}


def test_contact_default_email_and_types(cw):
    payload = {"id": 3, "firstName": "Ava", "lastName": "Chen", "company": {"id": 12, "name": "X"},
               "types": [{"id": 1, "name": "Billing"}], "inactiveFlag": False, "communicationItems": [
                   {"type": {"id": 2, "name": "Direct"}, "value": "5035550101", "communicationType": "Phone", "defaultFlag": True},
                   {"type": {"id": 1, "name": "Email"}, "value": "ava.old@x.com", "communicationType": "Email", "defaultFlag": False},
                   {"type": {"id": 1, "name": "Email"}, "value": "ava.chen@x.com", "communicationType": "Email", "defaultFlag": True}]}
    assert cw.normalize("contacts", payload) == {
        "psa_id": "3", "company_psa_id": "12", "first_name": "Ava", "last_name": "Chen",
        "email": "ava.chen@x.com", "types": ["Billing"], "inactive": False}
    bare = cw.normalize("contacts", {"id": 4, "firstName": "Solo"})
    assert bare["email"] is None and bare["types"] == [] and bare["company_psa_id"] is None


def test_contact_type_uses_description(cw):
    assert cw.normalize("contact_types", {"id": 2, "description": "End User"}) == {"psa_id": "2", "name": "End User"}


def test_product_categories_paths_and_prefixed_ids(cw):
    assert cw.normalize("product_categories", {"id": 3, "name": "Security", "inactiveFlag": False}) == {
        "psa_id": "cat-3", "name": "Security", "parent_psa_id": None, "path": "Security"}
    assert cw.normalize("product_categories", {"id": 3, "name": "Endpoint", "category": {"id": 3, "name": "Security"}}) == {
        "psa_id": "sub-3", "name": "Endpoint", "parent_psa_id": "cat-3", "path": "Security/Endpoint"}


def test_product(cw):
    payload = next(p for p in DATASET.catalog if p["identifier"] == "S1-COMPLETE")
    assert cw.normalize("products", payload) == {
        "psa_id": str(payload["id"]), "sku": "S1-COMPLETE", "name": "SentinelOne Complete", "category": "Security",
        "subcategory": "Endpoint", "price": 8.5, "cost": 5.25, "product_class": "Service",
        "inactive": payload["inactiveFlag"]}
    no_sub = cw.normalize("products", {"id": 9, "identifier": "X", "description": "Thing", "category": {"id": 1, "name": "Misc"},
                                       "price": 10, "cost": None})
    assert no_sub["subcategory"] is None and no_sub["price"] == 10.0 and isinstance(no_sub["price"], float)


def test_member_and_asset(cw):
    member = {"id": 5, "identifier": "jdoe", "firstName": "Jane", "lastName": "Doe", "primaryEmail": "jdoe@msp.com",
              "inactiveFlag": True}
    assert cw.normalize("members", member) == {
        "psa_id": "5", "identifier": "jdoe", "first_name": "Jane", "last_name": "Doe", "name": "Jane Doe",
        "email": "jdoe@msp.com", "inactive": True}
    asset = {"id": 8, "name": "NWD-LT-014", "company": {"id": 1}, "type": {"id": 1, "name": "Laptop"},
             "serialNumber": "ABC123", "activeFlag": False}
    assert cw.normalize("assets", asset) == {
        "psa_id": "8", "company_psa_id": "1", "name": "NWD-LT-014", "asset_type": "Laptop",
        "serial_number": "ABC123", "active": False}


def broken(kind, index, **changes):
    payload = copy.deepcopy(DATASET.records(kind)[index])
    for key, value in changes.items():
        if value is ...:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


@pytest.mark.parametrize("entity, payload, reason", [
    ("companies", broken("companies", 0, id=...), "id missing"),
    ("companies", broken("companies", 0, id="12"), "not an integer"),
    ("companies", broken("companies", 0, id=True), "not an integer"),
    ("companies", broken("companies", 0, name=...), "name is missing"),
    ("companies", broken("companies", 0, name="   "), "name is missing"),
    ("companies", broken("companies", 0, types={"id": 1, "name": "Customer"}), "types should be a list"),
    ("companies", broken("companies", 0, types=["Customer"]), "each type should be an object"),
    ("company_types", {"id": 1}, "name is missing"),
    ("contact_types", {"id": 1, "description": ""}, "description is missing"),
    ("contacts", broken("contacts", 0, firstName=..., lastName=...), "name is missing"),
    ("contacts", broken("contacts", 0, communicationItems=[
        {"type": {"id": 1, "name": "Email"}, "value": "not-an-address", "communicationType": "Email", "defaultFlag": True}]),
     "not an email address"),
    ("contacts", broken("contacts", 0, communicationItems="a@b.com"), "should be a list"),
    ("products", broken("catalog", 0, price="12.50"), "price '12.50' is not a number"),
    ("products", broken("catalog", 0, cost=float("nan")), "is not a number"),
    ("products", broken("catalog", 0, description=...), "description is missing"),
    ("products", broken("catalog", 0, category="Hardware"), "category should be an object"),
    ("members", broken("members", 0, primaryEmail="jane at msp"), "not an email address"),
    ("assets", broken("configurations", 0, name=None), "name is missing"),
    ("product_categories", {"id": 4, "name": "Laptops", "category": None}, "category is missing"),
    ("product_categories", {"id": "x", "name": "Hardware"}, "not an integer"),
    ("assets", ["not", "an", "object"], "expected a JSON object"),
])
def test_record_errors(cw, entity, payload, reason):
    with pytest.raises(RecordError, match=reason) as error:
        cw.normalize(entity, payload)
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)


def test_unknown_entity(cw):
    with pytest.raises(ValueError, match="unknown entity"):
        cw.normalize("tickets", {"id": 1})
