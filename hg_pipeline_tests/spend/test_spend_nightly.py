"""Spend in the nightly resync: read whole only when something may have changed.

After a full sync, a nightly reads spend again only when spend was never read, the window's last
month moved (a new month bills new recurring lines), or the connector's probe reports a change in
a spend source since the watermark. ConnectWise probes its agreements, invoices and product items
(one `pageSize=1` request each); HaloPSA's and Autotask's spend lists cannot be asked for changes,
so their nightly reads spend whole and says why.

Against the real simulators and PostgreSQL; requests are counted at the simulator (its counters and
`GET /_simulator/stats`); expectations are computed from the dataset's vendor records."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select, union_all

from hg_pipeline.connectors import autotask_spend, halo_spend
from hg_pipeline.connectors.autotask import AutotaskConnector
from hg_pipeline.connectors.connectwise import ConnectWiseConnector
from hg_pipeline.connectors.halopsa import HaloPsaConnector
from hg_pipeline.connectors.registry import source as source_spec
from hg_pipeline.connectors.spend_lines import window
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.base import STATS_PATH
from hg_pipeline.simulators.datasets import generate
from hg_pipeline.warehouse.staging import watermark
from hg_pipeline.warehouse.tables import spend, spend_unmapped
from hg_pipeline_tests.spend.test_spend_sync import FIRST, ONE_OFF, expected_lines

SOURCES = ["connectwise", "halopsa", "autotask"]
CONNECTORS = {"connectwise": ConnectWiseConnector, "halopsa": HaloPsaConnector, "autotask": AutotaskConnector}
# The API paths (below the simulator's prefix) of each source's spend lists.
SPEND_LISTS = {
    "connectwise": ("/finance/agreements", "/finance/invoices", "/procurement/products"),
    "halopsa": ("/RecurringInvoice", "/Invoice"),
    "autotask": ("/Contracts/query", "/ContractServiceUnits/query"),
}
PROBES = {"/finance/agreements": 1, "/finance/invoices": 1, "/procurement/products": 1}
# Why a nightly of a source that cannot be asked for spend changes reads it whole.
READ_WHOLE = {"halopsa": f"full: {halo_spend.NO_CHANGE_FILTER}", "autotask": f"full: {autotask_spend.NO_CHANGE_FIELD}"}


@pytest.fixture(params=SOURCES)
def psa(request):
    """(source name, a running simulator of it on the small dataset, seed 1)."""
    with source_spec(request.param).simulator_class()(generate("small", seed=1)) as simulator:
        yield request.param, simulator


def spend_requests(simulator, name: str) -> dict[str, int]:
    """API path -> requests, for the paths of spend lists (a ConnectWise agreement's additions too)."""
    return {path: count for path, count in simulator.requests_by_path.items()
            if path in SPEND_LISTS[name] or path.endswith("/additions")}


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_month() -> str:
    now = datetime.now(timezone.utc)
    return f"{now.year + now.month // 12:04d}-{now.month % 12 + 1:02d}"


def expected_by_month(ds, one_off: bool, months: list[str]) -> dict[str, Decimal]:
    """month -> what the MSP bills in it (active agreements' billable additions, invoiced one-off items)."""
    billed: dict[str, Decimal] = defaultdict(Decimal)
    for _, _, month, amount in expected_lines(ds, one_off, months).values():
        billed[month] += amount
    return dict(billed)


def billed_by_month(engine, tenant: str) -> dict[str, Decimal]:
    """month -> spend rows plus the lines kept apart (nothing is lost: together, every line)."""
    rows = union_all(select(spend.c.month, spend.c.amount).where(spend.c.tenant_id == tenant),
                     select(spend_unmapped.c.month, spend_unmapped.c.amount).where(
                         spend_unmapped.c.tenant_id == tenant)).subquery()
    with engine.connect() as conn:
        return dict(conn.execute(select(rows.c.month, func.sum(rows.c.amount)).group_by(rows.c.month)).all())


def spend_rows(engine, tenant: str) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(spend.c.company_id, spend.c.category_id, spend.c.product_id, spend.c.month,
                                          spend.c.amount, spend.c.currency, spend.c.line_psa_id).where(
            spend.c.tenant_id == tenant)).all())


def synced(pg_url, instance, make_tenant, name, simulator) -> str:
    tenant = make_tenant("acme", simulator, mapping=FIRST, source=name)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    assert outcome.stages["spend_raw"]["mode"] == "full" and outcome.stages["spend_raw"]["received"] > 0
    return tenant


def test_a_nightly_without_spend_change_only_probes(warehouse, pg_url, instance, psa, make_tenant):
    name, simulator = psa
    tenant = synced(pg_url, instance, make_tenant, name, simulator)
    rows, mark = spend_rows(warehouse, tenant), watermark(warehouse, tenant, "spend")
    assert rows
    simulator.reset_counts()
    outcome = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert outcome.success, outcome.reason
    raw = outcome.stages["spend_raw"]
    if name == "connectwise":
        assert raw["mode"].startswith("unchanged: no change in the PSA's spend sources since ")
        assert raw["received"] == 0
        assert spend_requests(simulator, name) == PROBES  # no agreement list, no additions, no pages
        assert watermark(warehouse, tenant, "spend") == mark  # a probe is no read: the watermark stays
    else:  # nothing to ask: read whole, and said why
        assert raw["mode"] == READ_WHOLE[name]
        assert raw["received"] > 0
        assert set(spend_requests(simulator, name)) == set(SPEND_LISTS[name])
        assert watermark(warehouse, tenant, "spend") > mark
    assert spend_rows(warehouse, tenant) == rows


def test_the_connectwise_probe_costs_three_requests_at_the_simulator(warehouse, pg_url, instance, simulator,
                                                                    make_tenant):
    """Counted by `GET /_simulator/stats`: the spend extract of a nightly alone, after a full sync."""
    from hg_pipeline.extract import extract_entity
    from hg_pipeline.orchestration.resources import PsaResource
    from hg_pipeline.warehouse.tenants import get_tenant

    tenant_id = synced(pg_url, instance, make_tenant, "connectwise", simulator)
    tenant = get_tenant(warehouse, tenant_id)
    connector = PsaResource().connector_for(tenant)
    _ = connector.api_root  # the codebase lookup is no spend request
    before = requests.get(simulator.base_url + STATS_PATH, timeout=5).json()["requests"]
    result = extract_entity(warehouse, tenant, "spend", connector, "probe-run", incremental=True)
    after = requests.get(simulator.base_url + STATS_PATH, timeout=5).json()["requests"]
    assert result.mode.startswith("unchanged: ") and result.counts.received == 0
    assert after - before == 3

    with simulator.lock:  # a product item sold since: the next probe sees it at once
        item = next(i for i in simulator.dataset.product_items if not i["agreement"])
        item["_info"]["lastUpdated"] = now_text()
    result = extract_entity(warehouse, tenant, "spend", PsaResource().connector_for(tenant), "probe-run-2",
                            incremental=True)
    assert result.mode.startswith(f"full: product item {item['id']} changed after "), result.mode
    assert result.counts.received > 0


def _cancel_an_agreement(ds, name: str, months: list[str]) -> None:
    """An Active agreement that bills in the window is cancelled now (every vendor's shape follows)."""
    billing = {a["agreementId"] for a in ds.agreement_additions if a["billCustomer"] == "Billable"}
    agreement = next(a for a in ds.agreements if a["agreementStatus"] == "Active" and a["id"] in billing
                     and a["noEndingDateFlag"] and a["startDate"][:7] < months[0])
    agreement.update(agreementStatus="Cancelled", cancelledFlag=True)
    agreement["_info"]["lastUpdated"] = now_text()


def _move_an_invoice(ds, name: str, months: list[str]) -> None:
    """An invoice with sold items is re-dated to another month of the window."""
    sold = {i["invoice"]["id"] for i in ds.product_items if not i["agreement"] and not i["cancelledFlag"]}
    invoice = next(i for i in ds.invoices if i["id"] in sold and i["date"][:7] in months[1:])
    invoice["date"] = f"{months[0]}-01T00:00:00Z"
    invoice["_info"]["lastUpdated"] = now_text()


def _resell_an_item(ds, name: str, months: list[str]) -> None:
    """A product item sold in the window gets a larger quantity."""
    dated = {i["id"]: i["date"][:7] for i in ds.invoices}
    item = next(i for i in ds.product_items if not i["agreement"] and not i["cancelledFlag"]
                and dated[i["invoice"]["id"]] in months)
    item["quantity"] += 3
    item["_info"]["lastUpdated"] = now_text()


CHANGES = [("connectwise", _cancel_an_agreement), ("halopsa", _cancel_an_agreement),
           ("autotask", _cancel_an_agreement), ("connectwise", _move_an_invoice), ("connectwise", _resell_an_item)]


@pytest.mark.parametrize("name, change", CHANGES, ids=[f"{n}-{c.__name__.strip('_')}" for n, c in CHANGES])
def test_a_changed_spend_source_makes_the_nightly_read_whole(warehouse, pg_url, instance, make_tenant, name, change):
    months = window()
    with source_spec(name).simulator_class()(generate("small", seed=1)) as simulator:
        ds = simulator.dataset
        tenant = synced(pg_url, instance, make_tenant, name, simulator)
        before = billed_by_month(warehouse, tenant)
        assert before == expected_by_month(ds, ONE_OFF[name], months)
        with simulator.lock:
            change(ds, name, months)
        after = expected_by_month(ds, ONE_OFF[name], months)
        assert after != before
        simulator.reset_counts()
        outcome = run_sync(pg_url, tenant, "nightly", instance=instance)
        assert outcome.success, outcome.reason
        raw = outcome.stages["spend_raw"]
        assert raw["mode"].startswith("full: ") and raw["received"] > 0, raw["mode"]
        if name == "connectwise":
            kind = {_cancel_an_agreement: "agreement", _move_an_invoice: "invoice", _resell_an_item: "product item"}
            assert raw["mode"].startswith(f"full: {kind[change]} "), raw["mode"]
            assert any(path.endswith("/additions") for path in spend_requests(simulator, name))
        assert billed_by_month(warehouse, tenant) == after


def test_a_new_month_reads_spend_whole(warehouse, pg_url, instance, psa, make_tenant, monkeypatch):
    name, simulator = psa
    tenant = synced(pg_url, instance, make_tenant, name, simulator)
    ahead = next_month()
    monkeypatch.setattr(CONNECTORS[name], "spend_until", ahead)  # the clock moved on: December's window
    outcome = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert outcome.success, outcome.reason
    raw = outcome.stages["spend_raw"]
    this_month = datetime.now(timezone.utc).strftime("%Y-%m")
    assert raw["mode"] == f"full: the spend window now ends in {ahead}, the last read was in {this_month}"
    months = window(ahead)
    billed = billed_by_month(warehouse, tenant)
    assert billed == expected_by_month(simulator.dataset, ONE_OFF[name], months)
    assert ahead in billed and window()[0] not in billed  # the window moved by a month


def test_a_first_nightly_reads_spend_then_the_next_one_probes(warehouse, pg_url, instance, simulator, make_tenant):
    tenant = make_tenant("acme", simulator, mapping=FIRST)
    first = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert first.success, first.reason
    assert first.stages["spend_raw"]["mode"] == "full: spend was never read"
    assert first.stages["spend_raw"]["received"] > 0
    rows = spend_rows(warehouse, tenant)
    simulator.reset_counts()
    second = run_sync(pg_url, tenant, "nightly", instance=instance)
    assert second.success, second.reason
    assert second.stages["spend_raw"]["mode"].startswith("unchanged: ")
    assert spend_requests(simulator, "connectwise") == PROBES
    assert spend_rows(warehouse, tenant) == rows
