"""Spend end to end: the simulators' agreements and invoices (ConnectWise: agreements' additions and
invoiced product items; HaloPSA: recurring invoices and invoices; Autotask: contracts' service
units, no one-off sales, each on a service, an entity apart from the products with ids of its
own; all translated from the same dataset),
through a full sync into PostgreSQL, and remaps that re-derive spend without calling the PSA.

Expectations are computed here from the dataset's vendor records (quantity x unit price per
month of the window), not through the code under test."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from hg_pipeline.connectors.registry import source as source_spec
from hg_pipeline.simulators.autotask_billing import service_id
from hg_pipeline.simulators.datasets import generate

from hg_pipeline.ids import category_id
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import products, spend, spend_unmapped

BUNDLE_SHARES = {"Security/Endpoint Protection": "33.34", "Security/Email Security": "33.33",
                 "Managed Services/Helpdesk & Support": "33.33"}
MAPPING = """\
companies:
  auto_import_new: true
  types: {Customer: client, Prospect: prospect, Vendor: supplier, Partner: supplier, Competitor: ignore}
contacts: {enabled: false}
products:
  mode: by_category
  auto_import_new_categories: %(auto)s
  categories:
    "Hardware/Laptops": {action: map, to: "Hardware/End User Devices"}
    "Backup": {action: map, to: "%(backup)s"}
    "Misc": {action: ignore}
%(more)s
  distributions:
    "MSP-BUNDLE-150":
      - {to: "Security/Endpoint Protection", pct: 33.34}
      - {to: "Security/Email Security", pct: 33.33}
      - {to: "Managed Services/Helpdesk & Support", pct: 33.33}
members: {enabled: false}
assets: {enabled: false}
"""
FIRST = MAPPING % {"auto": "true", "backup": "Backup & Recovery/Backup Software", "more": ""}
# The second version moves Backup and leaves Telecom without a rule (pending).
EXPLICIT = "\n".join(f'    "{name}": {{action: import}}' for name in
                     ("Hardware", "Software", "Security", "Cloud Services", "Labor"))
SECOND = MAPPING % {"auto": "false", "backup": "Backup & Recovery/Business Continuity", "more": EXPLICIT}


SOURCES = ["connectwise", "halopsa", "autotask"]
ONE_OFF = {"connectwise": True, "halopsa": True, "autotask": False}  # invoiced one-off sales read


def line_product(name: str, catalog_item: dict) -> tuple[str, str]:
    """(psa_id, PSA category) of what a line of `name` bills for a catalog item: Autotask's
    contracts bill the item's service, "svc-" + its own id, whose PSA category is "Services"."""
    if name == "autotask":
        return f"svc-{service_id(catalog_item['id'])}", "Services"
    return str(catalog_item["id"]), catalog_item["category"]["name"]


@pytest.fixture(params=SOURCES)
def psa(request):
    """(source name, a running simulator of it on the small dataset, seed 1)."""
    with source_spec(request.param).simulator_class()(generate("small", seed=1)) as simulator:
        yield request.param, simulator


def window() -> list[str]:
    now = datetime.now(timezone.utc)
    last = now.year * 12 + now.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(last - 11, last + 1)]


def expected_lines(ds, one_off: bool = True, months: list[str] | None = None) -> dict[str, tuple[int, int, str, Decimal]]:
    """line key -> (company id, catalog id, month, amount): what the MSP billed in `months` (the window)."""
    months = window() if months is None else months
    agreements = {a["id"]: a for a in ds.agreements if a["agreementStatus"] == "Active"}
    lines = {}
    for addition in ds.agreement_additions:
        agreement = agreements.get(addition["agreementId"])
        if agreement is None or addition["billCustomer"] != "Billable":
            continue
        first = max(agreement["startDate"][:7], addition["effectiveDate"][:7])
        last = None if agreement["noEndingDateFlag"] else agreement["endDate"][:7]
        stop = addition["cancelledDate"][:7] if addition["cancelledDate"] else None
        for month in months:
            if first <= month and (last is None or month <= last) and (stop is None or month < stop):
                amount = Decimal(str(addition["quantity"])) * Decimal(str(addition["unitPrice"]))
                lines[f"a{addition['id']}/{month}"] = (agreement["company"]["id"], addition["product"]["id"], month,
                                                       amount)
    invoiced = {i["id"]: i["date"][:7] for i in ds.invoices}
    for item in ds.product_items if one_off else ():
        month = invoiced[item["invoice"]["id"]]
        if not item["cancelledFlag"] and not item["agreement"] and month in months:
            lines[f"i{item['id']}"] = (item["company"]["id"], item["catalogItem"]["id"], month,
                                       Decimal(str(item["quantity"])) * Decimal(str(item["price"])))
    return lines


def product_categories(engine, tenant: str) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(products.c.psa_id, products.c.category_id).where(
            products.c.tenant_id == tenant, products.c.deleted_at.is_(None))).all())


def spend_of(engine, tenant: str, company_id: str | None = None) -> dict[tuple[str, str], Decimal]:
    """(category id, month) -> amount in `spend`."""
    query = select(spend.c.category_id, spend.c.month, func.sum(spend.c.amount)).where(spend.c.tenant_id == tenant)
    if company_id is not None:
        query = query.where(spend.c.company_id == company_id)
    with engine.connect() as conn:
        return {(c, m): a for c, m, a in conn.execute(query.group_by(spend.c.category_id, spend.c.month))}


def company_id_of(engine, tenant: str, psa_id: int) -> str:
    from hg_pipeline.warehouse.tables import companies
    with engine.connect() as conn:
        return conn.scalar(select(companies.c.id).where(companies.c.tenant_id == tenant,
                                                        companies.c.psa_id == str(psa_id)))


def test_one_clients_spend_per_category_and_month_to_the_cent(warehouse, pg_url, instance, psa, make_tenant):
    name, simulator = psa
    ds = simulator.dataset
    tenant = make_tenant("acme", simulator, mapping=FIRST, source=name)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason

    lines = expected_lines(ds, ONE_OFF[name])
    catalog = {p["id"]: p for p in ds.catalog}
    bundle = next(p["id"] for p in ds.catalog if p["identifier"] == "MSP-BUNDLE-150")
    by_company = defaultdict(list)
    for company, product, month, amount in lines.values():
        by_company[company].append((product, month, amount))
    # the client with the most lines and no bundle (the bundle has its own test below)
    client = max((c for c, items in by_company.items() if all(p != bundle for p, _, _ in items)),
                 key=lambda c: len(by_company[c]))
    categories = product_categories(warehouse, tenant)
    want: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for product, month, amount in by_company[client]:
        psa_id, psa_category = line_product(name, catalog[product])
        if psa_category != "Misc":
            want[(categories[psa_id], month)] += amount
    assert len(want) >= 12, "the client should pay over the whole year"
    assert spend_of(warehouse, tenant, company_id_of(warehouse, tenant, client)) == dict(want)
    if name != "autotask":  # the backup rule's target is where backup products' spend lands
        assert any(c == category_id("Backup & Recovery/Backup Software") for c, _ in spend_of(warehouse, tenant))

    with warehouse.connect() as conn:
        kept = conn.execute(select(spend_unmapped.c.outcome, func.sum(spend_unmapped.c.amount)).where(
            spend_unmapped.c.tenant_id == tenant).group_by(spend_unmapped.c.outcome)).all()
    misc_total = sum(a for _, p, _, a in lines.values() if line_product(name, catalog[p])[1] == "Misc")
    # Misc is ignored: its spend is kept apart, not lost (Autotask's services are no Misc product:
    # "Services" is imported like any new PSA category, and nothing waits "not in the catalog")
    assert dict(kept) == ({"ignored": misc_total} if misc_total else {})
    total = sum(a for a in spend_of(warehouse, tenant).values())
    assert total + misc_total == sum(a for *_, a in lines.values())

    meta = outcome.stages["spend"]
    assert meta["lines_mapped"] + meta["lines_kept_apart"] == outcome.stages["spend_mapped"]["lines"] == len(lines)
    last_month = window()[-1]
    assert meta["last_month"] == last_month
    table = meta["spend_last_month"]
    assert f"Spend in {last_month}" in table
    assert ("| Services |" if name == "autotask" else "| Backup & Recovery/Backup Software |") in table
    assert outcome.stages["spend_raw"]["received"] == len(lines)


def test_a_distributed_bundle_splits_exactly(warehouse, pg_url, instance, simulator, make_tenant):
    ds = simulator.dataset
    tenant = make_tenant("acme", simulator, mapping=FIRST)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason
    bundle = next(p["id"] for p in ds.catalog if p["identifier"] == "MSP-BUNDLE-150")
    lines = {key: line for key, line in expected_lines(ds).items() if line[1] == bundle}
    assert len(lines) >= 12, "the small dataset bills the bundle"
    with warehouse.connect() as conn:
        rows = conn.execute(select(spend.c.line_psa_id, spend.c.category_id, spend.c.amount, spend.c.month).where(
            spend.c.tenant_id == tenant, spend.c.product_id.in_(
                select(products.c.id).where(products.c.tenant_id == tenant, products.c.psa_id == str(bundle))))).all()
    parts = defaultdict(dict)
    for line_id, category, amount, month in rows:
        parts[(line_id, month)][category] = amount
    shares = {category_id(path): Decimal(pct) for path, pct in BUNDLE_SHARES.items()}
    got = sorted(sum(split.values()) for split in parts.values())
    assert got == sorted(amount for *_, amount in lines.values())  # every line whole, to the cent
    for split in parts.values():
        whole = sum(split.values())
        assert set(split) == set(shares)
        for category, amount in split.items():
            assert abs(amount - whole * shares[category] / 100) < Decimal("0.01")
    assert any(len({a for a in split.values()}) > 1 for split in parts.values()), "some line has an odd cent"


def test_a_remap_moves_spend_and_keeps_pending_spend_apart_without_calling_the_psa(
        warehouse, pg_url, instance, simulator, make_tenant):
    ds = simulator.dataset
    tenant = make_tenant("acme", simulator, mapping=FIRST)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = spend_of(warehouse, tenant)
    catalog = {p["id"]: p for p in ds.catalog}
    lines = expected_lines(ds)
    backup = sum(a for _, p, _, a in lines.values() if catalog[p]["category"]["name"] == "Backup")
    telecom = sum(a for _, p, _, a in lines.values() if catalog[p]["category"]["name"] == "Telecom")
    assert backup and telecom
    old, new = category_id("Backup & Recovery/Backup Software"), category_id("Backup & Recovery/Business Continuity")
    assert sum(a for (c, _), a in before.items() if c == old) == backup

    store_mapping(warehouse, tenant, SECOND)
    asked = simulator.requests
    outcome = run_sync(pg_url, tenant, "remap", instance=instance)
    assert outcome.success, outcome.reason
    assert simulator.requests == asked  # derived from staging: no PSA call

    after = spend_of(warehouse, tenant)
    assert sum(a for (c, _), a in after.items() if c == old) == 0
    assert sum(a for (c, _), a in after.items() if c == new) == backup
    with warehouse.connect() as conn:
        kept = conn.execute(select(spend_unmapped.c.outcome, spend_unmapped.c.product_psa_id, spend_unmapped.c.reason,
                                   spend_unmapped.c.amount).where(spend_unmapped.c.tenant_id == tenant)).all()
    pending = [row for row in kept if row.outcome == "pending"]
    assert {catalog[int(row.product_psa_id)]["category"]["name"] for row in pending} == {"Telecom"}
    assert sum(row.amount for row in pending) == telecom
    assert all(row.reason.startswith(f"product {row.product_psa_id}: ") and "Telecom" in row.reason
               for row in pending)
    assert sum(after.values()) + sum(row.amount for row in kept) == sum(a for *_, a in lines.values())


def test_an_autotask_contract_line_lands_on_its_services_category(warehouse, pg_url, instance, make_tenant):
    """Autotask's contracts bill services, read as products with ids of their own ("svc-"): their
    PSA category "Services" maps like any other, a service record rule wins over it, and no line
    waits in spend_unmapped as an unknown product."""
    with source_spec("autotask").simulator_class()(generate("small", seed=1)) as simulator:
        ds = simulator.dataset
        catalog = {p["id"]: p for p in ds.catalog}
        lines = expected_lines(ds, one_off=False)
        backup = next(p for p in sorted({p for _, p, _, _ in lines.values()})
                      if catalog[p]["category"]["name"] == "Backup")
        backup_service = f"svc-{service_id(backup)}"
        services_to, backup_to = "Managed Services/Monitoring & Management", "Backup & Recovery/Backup Software"
        mapping = (MAPPING % {"auto": "false", "backup": backup_to,
                              "more": f'    "Services": {{action: map, to: "{services_to}"}}'}).replace(
            "  distributions:", f'  records:\n    "{backup_service}": {{action: map, to: "{backup_to}"}}\n'
                                "  distributions:")
        tenant = make_tenant("acme", simulator, mapping=mapping, source="autotask")
        outcome = run_sync(pg_url, tenant, "full", instance=instance)
        assert outcome.success, outcome.reason

    on_backup = sum(a for _, p, _, a in lines.values() if p == backup)
    assert on_backup and on_backup < sum(a for *_, a in lines.values())
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for (category, _), amount in spend_of(warehouse, tenant).items():
        totals[category] += amount
    assert dict(totals) == {category_id(backup_to): on_backup,
                            category_id(services_to): sum(a for *_, a in lines.values()) - on_backup}
    with warehouse.connect() as conn:
        assert conn.execute(select(func.count()).select_from(spend_unmapped).where(
            spend_unmapped.c.tenant_id == tenant)).scalar() == 0
        billed = conn.execute(select(products.c.psa_id, products.c.mapping_source).where(
            products.c.id.in_(select(spend.c.product_id).where(spend.c.tenant_id == tenant)))).all()
    assert dict(billed)[backup_service] == "record"
    assert {psa_id for psa_id, _ in billed} == {f"svc-{service_id(p)}" for _, p, _, _ in lines.values()}
    assert {source for psa_id, source in billed if psa_id != backup_service} == {"category"}
