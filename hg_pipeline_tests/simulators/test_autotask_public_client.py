"""A public Autotask client reads the Autotask simulator over real HTTP, as pyconnectwise reads
the ConnectWise one (test_cw_simulator.py).

The client is django-autotask's API layer (`djautotask.api`), the client that
../shared/psa-api-notes.md section 3 cites for the zone lookup, the headers and the paging. It
runs its own requests code: the zone lookup on `AUTOTASK_SERVER_URL` (its documented setting,
pointed at the simulator), GET queries with `?search=` and POST queries with a body, each paged
by following `nextPageUrl`. Django is only configured, never set up: the client reads its
settings and keeps the zone in Django's default in-memory cache. docs/decisions.md says why not
the other clients on PyPI.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from djautotask import api

from hg_pipeline.simulators.autotask import DEMO_CREDENTIALS, AutotaskSimulator, company
from hg_pipeline.simulators.datasets import generate


@pytest.fixture
def at():
    if not settings.configured:
        settings.configure()  # Django's defaults: the in-memory cache where the client keeps the zone
    with AutotaskSimulator(generate("small", seed=1)) as simulator:
        with override_settings(AUTOTASK_SERVER_URL=simulator.base_url + "/atservicesrest/"):
            cache.clear()  # no zone left over from another simulator
            yield simulator


def client(client_class):
    return client_class(username=DEMO_CREDENTIALS["username"], password=DEMO_CREDENTIALS["secret"],
                        integration_code=DEMO_CREDENTIALS["integration_code"], rest_api_version="1.0")


def read_all(api_client, page_size: int) -> tuple[list[dict], int]:
    """Every record of the client's query and the number of pages, following `nextPageUrl` as
    django-autotask's Synchronizer.fetch_records does."""
    records, pages, next_url = [], 0, None
    while True:
        answer = api_client.get(next_url, page_size=page_size)
        records += answer["items"]
        pages += 1
        next_url = answer["pageDetails"]["nextPageUrl"]
        if not next_url:
            return records, pages


def test_zone_lookup_once_then_every_call_under_the_zone(at):
    companies, contacts = client(api.AccountsAPIClient), client(api.ContactsAPIClient)
    assert companies.get_api_url() == at.zone_url + "v1.0/Companies/"
    assert contacts.get_api_url() == at.zone_url + "v1.0/Contacts/"
    assert at.zone_requests == 1  # the second client took the zone from the cache


def test_active_companies_over_several_get_pages(at):
    companies = client(api.AccountsAPIClient)
    companies.add_condition(api.ApiCondition(op="eq", field="isActive", value=True))  # as its AccountSynchronizer
    records, pages = read_all(companies, page_size=15)
    expected = [(c["id"], c["companyName"]) for c in map(company, at.dataset.companies) if c["isActive"]]
    assert 0 < len(expected) < len(at.dataset.companies)
    assert [(r["id"], r["companyName"]) for r in records] == expected
    assert pages == 3


def test_contacts_of_some_companies_keep_the_filter_on_every_page(at):
    wanted = [c["id"] for c in at.dataset.companies[:8]]
    contacts = client(api.ContactsAPIClient)
    contacts.add_condition(api.ApiCondition(op="in", field="companyID", value=wanted))
    records, pages = read_all(contacts, page_size=5)
    expected = [(c["id"], c["firstName"], c["lastName"], c["company"]["id"])
                for c in at.dataset.contacts if c["company"]["id"] in wanted]
    assert [(r["id"], r["firstName"], r["lastName"], r["companyID"]) for r in records] == expected
    assert pages > 2 and len(expected) > 10


def test_configuration_items_over_posted_pages(at):
    """This client POSTs its ConfigurationItems queries and re-sends the body to `nextPageUrl`."""
    items = client(api.ConfigurationItemsAPIClient)
    items.add_condition(api.ApiCondition(op="exist", field="id"))
    records, pages = read_all(items, page_size=50)
    expected = [(c["id"], c["name"]) for c in at.dataset.configurations]
    assert [(r["id"], r["referenceTitle"]) for r in records] == expected
    assert pages == 3


def test_company_type_picklist(at):
    fields = client(api.AccountTypesAPIClient).get(None)["fields"]
    company_type = next(f for f in fields if f["name"] == "companyType")
    assert [(int(v["value"]), v["label"]) for v in company_type["picklistValues"]] == \
        [(t["id"], t["name"]) for t in at.dataset.company_types]
