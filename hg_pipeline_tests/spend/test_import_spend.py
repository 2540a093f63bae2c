"""The import source's spend lines (`hg-pipeline import ... spend.csv --sync`) are mapped and loaded
like a PSA's: by product decision, by category path for a line without a product, split for a
distributed product, and kept apart with their reason otherwise."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from hg_pipeline.ids import category_id
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import spend, spend_unmapped

MAPPING = """
companies:
  auto_import_new: true
  types: {Customer: client, Competitor: ignore}
contacts: {enabled: false}
products:
  mode: by_category
  auto_import_new_categories: false
  categories:
    "Software/Microsoft 365": {action: map, to: "Software & Licensing/Productivity Suites"}
    "Security/Endpoint": {action: map, to: "Security/Endpoint Protection"}
    "Misc": {action: ignore}
  distributions:
    "BND-1": [{to: "Security/Endpoint Protection", pct: 50}, {to: "Managed Services/Helpdesk & Support", pct: 50}]
members: {enabled: false}
assets: {enabled: false}
"""
COMPANIES = "id,name,type\n1,Acme,Customer\n2,Beta,Customer\n3,Rival,Competitor\n"
PRODUCTS = ("id,name,sku,category,price\n"
            "p1,Microsoft 365 Business Premium,M365-BP,Software/Microsoft 365,22.00\n"
            "p2,SentinelOne Complete,S1-C,Security/Endpoint,8.50\n"
            "p3,Shipping & Handling,SHIP,Misc,25.00\n"
            "p4,Managed Security Bundle,BND-1,Misc,100.00\n"
            "p5,Poly Desk Phone,POLY,Telecom,289.00\n")
SPEND = ("company_id,product_id,category,month,amount,currency\n"
         "1,p1,,2026-10,100.00,USD\n"
         "1,p2,,2026-10,55.55,USD\n"
         "2,p4,,2026-10,100.01,USD\n"
         "2,,Security/Email Security,2026-10,12.34,USD\n"
         "2,p1,,2026-09,44.00,USD\n"
         "1,p3,,2026-10,7.00,USD\n"
         "1,p5,,2026-10,289.00,USD\n"
         "3,p1,,2026-10,9.99,USD\n"
         "1,p9,,2026-10,1.00,USD\n"
         "2,,Nowhere/Thing,2026-10,2.00,USD\n")


def test_import_spend_lines_are_loaded_and_the_rest_kept_apart(import_cli, warehouse, tmp_path):
    store_mapping(warehouse, "nopsa", MAPPING)
    files = []
    for name, text in (("companies.csv", COMPANIES), ("products.csv", PRODUCTS), ("spend.csv", SPEND)):
        (tmp_path / name).write_text(text, encoding="utf-8")
        files.append(str(tmp_path / name))
    code, out, err = import_cli("import", "nopsa", *files, "--sync")
    assert code == 0, err
    assert "full sync of nopsa: success" in out

    with warehouse.connect() as conn:
        loaded = conn.execute(select(spend.c.line_psa_id, spend.c.category_id, spend.c.month, spend.c.amount,
                                     spend.c.currency).where(spend.c.tenant_id == "nopsa")).all()
        apart = conn.execute(select(spend_unmapped.c.company_psa_id, spend_unmapped.c.product_psa_id,
                                    spend_unmapped.c.category, spend_unmapped.c.amount, spend_unmapped.c.outcome,
                                    spend_unmapped.c.reason).where(spend_unmapped.c.tenant_id == "nopsa")).all()
    got = sorted((c, m, a) for _, c, m, a, _ in loaded)
    assert got == sorted([
        (category_id("Software & Licensing/Productivity Suites"), "2026-10", Decimal("100.00")),
        (category_id("Security/Endpoint Protection"), "2026-10", Decimal("55.55")),
        (category_id("Security/Endpoint Protection"), "2026-10", Decimal("50.01")),  # the bundle, split
        (category_id("Managed Services/Helpdesk & Support"), "2026-10", Decimal("50.00")),
        (category_id("Security/Email Security"), "2026-10", Decimal("12.34")),  # by category path
        (category_id("Software & Licensing/Productivity Suites"), "2026-09", Decimal("44.00")),
    ])
    assert {currency for *_, currency in loaded} == {"USD"}
    outcomes = {(row.company_psa_id, row.product_psa_id or row.category): (row.outcome, row.amount)
                for row in apart}
    assert outcomes == {
        ("1", "p3"): ("ignored", Decimal("7.00")),
        ("1", "p5"): ("pending", Decimal("289.00")),
        ("3", "p1"): ("company_ignored", Decimal("9.99")),
        ("1", "p9"): ("unknown_product", Decimal("1.00")),
        ("2", "Nowhere/Thing"): ("unknown_category", Decimal("2.00")),
    }
    reasons = {row.product_psa_id or row.category: row.reason for row in apart}
    assert reasons["p5"].startswith("product p5: ") and "Telecom" in reasons["p5"]
    assert reasons["p9"] == "product p9 is not in the catalog"
    assert reasons["p1"].startswith("company 3 is not loaded: ")
    # nothing lost: what was imported is in spend or kept apart
    total = sum(a for *_, a, _ in loaded) + sum(row.amount for row in apart)
    assert total == sum(Decimal(line.split(",")[4]) for line in SPEND.splitlines()[1:])

    code, out, err = import_cli("import", "nopsa", *files, "--sync")  # the same files again: the same spend
    assert code == 0, err
    with warehouse.connect() as conn:
        again = conn.execute(select(spend.c.line_psa_id, spend.c.category_id, spend.c.month, spend.c.amount,
                                    spend.c.currency).where(spend.c.tenant_id == "nopsa")).all()
    assert sorted(again) == sorted(loaded)
