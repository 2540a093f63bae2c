"""The dataset generator: deterministic, realistic, referentially sound."""

from __future__ import annotations

import re
import time

import pytest

from hg_pipeline.simulators.datasets import BASE_TIME, ENDPOINT_KINDS, generate, iso


def test_same_seed_same_data_and_different_seed_different_data():
    assert generate("small", 7) == generate("small", 7)
    assert generate("small", 7) != generate("small", 8)


def test_small_sizes_and_realistic_names():
    ds = generate("small")
    counts = ds.counts()
    assert counts == {
        "company_types": 5, "companies": 40, "contact_types": 4, "contacts": 150, "categories": 8,
        "subcategories": 13, "catalog": 60, "members": 12, "configuration_types": 10, "configurations": 120,
    }
    assert [t["name"] for t in ds.company_types] == ["Customer", "Prospect", "Vendor", "Partner", "Competitor"]
    assert [t["description"] for t in ds.contact_types] == ["Billing", "End User", "Decision Maker", "Vendor Contact"]
    company_names = {c["name"] for c in ds.companies}
    assert {"Northwind Dental Group", "Harbor Logistics Ltd"} <= company_names
    assert sum(len(c["types"]) == 2 for c in ds.companies) >= 3
    products = {p["description"] for p in ds.catalog}
    assert {"Microsoft 365 Business Premium", "Dell Latitude 5440", "Managed Firewall - Monthly",
            "SentinelOne Complete", "Datto SIRIS 3 Appliance", "Hourly Support Labor",
            "MSP-BUNDLE-150 (Managed Security Bundle)"} <= products
    assert {s["name"] for s in ds.subcategories} >= {"Laptops", "Microsoft 365", "Endpoint", "Project", "Support"}
    assert any(not c["types"] for c in ds.contacts)
    assert all(re.fullmatch(r"[A-Z]{3}-[A-Z]{2,3}-\d{3}", c["name"]) for c in ds.configurations)


def test_shapes_ids_and_timestamps():
    ds = generate("small")
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    for kind in ENDPOINT_KINDS:
        records = ds.records(kind)
        ids = [r["id"] for r in records]
        assert ids == sorted(set(ids)) and all(isinstance(i, int) for i in ids), kind
        for record in records:
            info = record["_info"]
            assert stamp.fullmatch(info["lastUpdated"]) and stamp.fullmatch(info["dateEntered"])
            assert info["dateEntered"] <= info["lastUpdated"] <= iso(BASE_TIME)
    member = ds.members[0]
    assert member["primaryEmail"].endswith("@bluepeak-it.com") and member["licenseClass"] in "AFCX"
    product = ds.catalog[0]
    assert {"identifier", "description", "category", "type", "productClass", "price", "cost"} <= set(product)


def test_referential_integrity_and_valid_emails():
    ds = generate("small", seed=3)
    companies = {c["id"]: c for c in ds.companies}
    email = re.compile(r"^[a-z0-9.'-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
    for contact in ds.contacts:
        assert companies[contact["company"]["id"]]["name"] == contact["company"]["name"]
        for item in contact["communicationItems"]:
            if item["communicationType"] == "Email":
                assert email.match(item["value"]), item["value"]
    for config in ds.configurations:
        assert config["company"]["id"] in companies
    type_names = {t["name"] for t in ds.company_types}
    assert all(t["name"] in type_names for c in ds.companies for t in c["types"])
    categories = {c["id"]: c["name"] for c in ds.categories}
    subcategories = {s["id"]: s for s in ds.subcategories}
    for product in ds.catalog:
        assert categories[product["category"]["id"]] == product["category"]["name"]
        if "subcategory" in product:
            sub = subcategories[product["subcategory"]["id"]]
            assert sub["category"]["id"] == product["category"]["id"]
    assert sum("subcategory" in p for p in ds.catalog) > len(ds.catalog) / 2


def test_large_is_big_and_quick():
    started = time.perf_counter()
    ds = generate("large", seed=1)
    elapsed = time.perf_counter() - started
    print(f"large dataset generated in {elapsed:.2f} s")
    assert ds.counts()["configurations"] == 100_000 and ds.counts()["contacts"] == 40_000
    assert len(ds.companies) == 2000 and len({c["name"] for c in ds.companies}) == 2000
    assert len({c["identifier"] for c in ds.companies}) == 2000
    assert len(ds.catalog) == 20_000 and len({p["identifier"] for p in ds.catalog}) == 20_000
    assert elapsed < 15  # a few seconds on a normal machine; loose for busy CI


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset"):
        generate("medium")
