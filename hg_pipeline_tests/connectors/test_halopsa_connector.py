"""The HaloPSA connector against its simulator: every entity in the normalized shape, tokens
that expire or are revoked mid-read, the tenant, completeness, and refused records.
(The shared behaviour, paging, refusals, retries, incremental reads and the id sweep, is in
test_conformance.py.)"""

from __future__ import annotations

import time

import pytest

from hg_pipeline.connectors import PsaAuthError, RecordError, build_connector
from hg_pipeline.connectors.paging import IncompleteExtraction
from hg_pipeline.entities import ALL_ENTITIES, NORMALIZED_FIELDS
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.simulators.halopsa import DEMO_CREDENTIALS, HaloPsaSimulator


@pytest.fixture
def sim():
    with HaloPsaSimulator(generate("small", seed=1)) as simulator:
        yield simulator


@pytest.fixture
def connect():
    made = []

    def make(simulator, credentials=None, **options):
        options.setdefault("backoff", 0.02)
        connector = build_connector("halopsa", simulator.base_url, credentials or DEMO_CREDENTIALS, **options)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def _records(connector, entity, **kwargs):
    return [connector.normalize(entity, payload) for page in connector.iter_pages(entity, **kwargs) for payload in page]


def test_every_entity_reads_whole_in_the_normalized_shape(sim, connect):
    connector = connect(sim, page_size=7)
    ds = sim.dataset
    got = {entity: _records(connector, entity) for entity in ALL_ENTITIES}
    for entity, records in got.items():
        assert records and all(tuple(r) == NORMALIZED_FIELDS[entity] for r in records), entity
        assert sorted(connector.iter_ids(entity)) == sorted(r["psa_id"] for r in records), entity
    # inactive clients, users, items, assets and disabled agents are read too
    assert len(got["companies"]) == len(ds.companies)
    assert len(got["contacts"]) == len(ds.contacts) and any(c["inactive"] for c in got["contacts"])
    assert len(got["products"]) == len(ds.catalog) and any(p["inactive"] for p in got["products"])
    assert len(got["members"]) == len(ds.members)
    assert len(got["assets"]) == len(ds.configurations) and not all(a["active"] for a in got["assets"])
    assert {t["name"] for t in got["company_types"]} == {t["name"] for t in ds.company_types}
    assert {t["name"] for t in got["contact_types"]} == {t["description"] for t in ds.contact_types}
    # the product category paths ConnectWise gives, under the same parent ids
    paths = {c["path"]: c for c in got["product_categories"]}
    for sub in ds.subcategories:
        entry = paths[f"{sub['category']['name']}/{sub['name']}"]
        assert entry["parent_psa_id"] == f"cat-{sub['category']['id']}" and entry["name"] == sub["name"]

    contact = next(c for c in ds.contacts if c.get("types") and c.get("company"))
    row = next(r for r in got["contacts"] if r["psa_id"] == str(contact["id"]))
    assert row["company_psa_id"] == str(contact["company"]["id"])
    assert row["types"] == [t["name"] for t in contact["types"]]
    assert row["email"] == next(i["value"] for i in contact["communicationItems"] if i["communicationType"] == "Email")
    several = next(c for c in ds.companies if len(c["types"]) > 1)
    assert next(r for r in got["companies"] if r["psa_id"] == str(several["id"]))["types"] == [several["types"][0]["name"]]
    product = next(p for p in ds.catalog if p.get("subcategory"))
    row = next(r for r in got["products"] if r["psa_id"] == str(product["id"]))
    assert (row["sku"], row["name"], row["category"], row["subcategory"], row["price"], row["cost"]) == (
        product["identifier"], product["description"], product["category"]["name"], product["subcategory"]["name"],
        product["price"], product["cost"])
    configuration = ds.configurations[0]
    row = next(r for r in got["assets"] if r["psa_id"] == str(configuration["id"]))
    assert (row["company_psa_id"], row["name"], row["asset_type"], row["serial_number"]) == (
        str(configuration["company"]["id"]), configuration["name"], configuration["type"]["name"],
        configuration["serialNumber"])


def test_a_token_revoked_mid_read_is_renewed_once_and_the_read_goes_on(sim, connect):
    connector = connect(sim, page_size=7)
    pages = connector.iter_pages("contacts")
    got = list(next(pages))
    sim.revoke_tokens()  # as if Halo had restarted: the cached token now answers 401
    for page in pages:
        got.extend(page)
    assert [r["id"] for r in got] == sorted(c["id"] for c in sim.dataset.contacts)
    assert sim.token_requests == 2


def test_a_token_that_expires_mid_read_is_fetched_again(sim, connect):
    sim.token_lifetime = 1
    connector = connect(sim, page_size=50)
    connector.auth.margin = 0  # fetch again only once it has expired
    pages = connector.iter_pages("contacts")
    got = list(next(pages))
    time.sleep(1.2)
    for page in pages:
        got.extend(page)
    assert len(got) == len(sim.dataset.contacts)
    assert sim.token_requests == 2


def test_the_tenant_is_sent_when_the_credentials_name_one(connect):
    credentials = dict(DEMO_CREDENTIALS, tenant="acme-halo")
    with HaloPsaSimulator(generate("small", seed=1), credentials=credentials) as simulator:
        assert len(_records(connect(simulator, credentials), "members")) == len(simulator.dataset.members)
        with pytest.raises(PsaAuthError) as refused:
            _records(connect(simulator, DEMO_CREDENTIALS), "members")
    message = str(refused.value)
    assert refused.value.status == 401 and "/auth/token" in message and "\n" not in message
    assert DEMO_CREDENTIALS["client_secret"] not in message


def test_a_page_that_stays_short_makes_the_read_incomplete(sim, connect):
    sim.short_page("/Client", 2, keep=3)
    with pytest.raises(IncompleteExtraction, match=r"page 2 of 6 came back with 3 of 7 records"):
        _records(connect(sim, page_size=7), "companies")


def test_fewer_records_than_the_count_make_the_read_incomplete(sim, connect):
    sim.lie_about_count("/Client", 2)
    with pytest.raises(IncompleteExtraction, match=r"received 40 of the 42"):
        _records(connect(sim, page_size=7), "companies")


def test_a_record_without_a_readable_stamp_counts_as_changed(sim, connect):
    from datetime import datetime, timedelta, timezone

    with sim.lock:
        sim.dataset.companies[5]["_info"] = dict(sim.dataset.companies[5]["_info"], lastUpdated=None)
    since = datetime.now(timezone.utc) + timedelta(days=1)
    assert [r["psa_id"] for r in _records(connect(sim), "companies", since=since)] == [str(sim.dataset.companies[5]["id"])]
    assert not connect(sim).supports_incremental("members")


def test_a_bad_item_is_refused_with_its_reason(sim, connect):
    with sim.lock:
        sim.dataset.catalog[1] = dict(sim.dataset.catalog[1], price="twelve")
    connector = connect(sim)
    payload = next(p for page in connector.iter_pages("products") for p in page
                   if p["id"] == sim.dataset.catalog[1]["id"])
    with pytest.raises(RecordError, match=r"^item \d+: baseprice 'twelve' is not a number$"):
        connector.normalize("products", payload)
