"""`hg-pipeline import`: files checked completely before anything is staged, staged as one batch
through the extract stage, loaded by the tenant's sync like any PSA's records."""

from __future__ import annotations

import json

import jsonschema
import pytest
from sqlalchemy import select

from hg_pipeline.cli import main
from hg_pipeline.imports import formats
from hg_pipeline.imports.validate import check
from hg_pipeline.warehouse.mappings import store_mapping
from hg_pipeline.warehouse.tables import companies, contacts, import_batches, products, raw_inflight, raw_records

MAPPING = """
companies:
  auto_import_new: true
  types: {Customer: client, Vendor: supplier, Prospect: prospect}
contacts: {enabled: true, auto_import_new: true, types: {Billing: import}}
products:
  mode: by_category
  auto_import_new_categories: true
members: {enabled: true, auto_import_new: true}
assets: {enabled: true}
"""


def write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding, newline="")
    return str(path)


def staged(warehouse, entity: str) -> dict[str, dict]:
    with warehouse.connect() as conn:
        rows = conn.execute(select(raw_records.c.psa_id, raw_records.c.payload).where(
            raw_records.c.tenant_id == "nopsa", raw_records.c.entity == entity,
            raw_records.c.vanished_at.is_(None))).all()
    return {psa_id: json.loads(payload) for psa_id, payload in rows}


def live(warehouse, table) -> dict[str, str]:
    with warehouse.connect() as conn:
        return dict(conn.execute(select(table.c.psa_id, table.c.name if "name" in table.c else table.c.email).where(
            table.c.tenant_id == "nopsa", table.c.deleted_at.is_(None))).all())


def test_a_bad_csv_names_line_and_column_and_stages_nothing(import_cli, warehouse, tmp_path):
    good = write(tmp_path, "companies.csv", "id,name,type\n1,Acme,Customer\n")
    bad = write(tmp_path, "contacts.csv",
                "id,company_id,first_name,email,inactive\n"
                "10,1,Ann,ann@example.com,no\n"
                '11,1,"Bob\nSmith",bob-at-example,no\n'   # a quoted line break: the record spans lines 3-4
                "12,1,Cy,cy@example.com,maybe\n")
    code, out, err = import_cli("import", "nopsa", good, bad)
    assert code == 2 and out == ""
    first, *rest = err.strip().splitlines()
    assert first == ("hg-pipeline: tenant nopsa: import refused, nothing staged: contacts.csv, line 3, column 4 "
                     "(email): 'bob-at-example' is not an e-mail address (and 1 more problem)")
    assert rest == ["  contacts.csv, line 5, column 5 (inactive): 'maybe' is not true or false (true/false, yes/no, 1/0)"]
    assert staged(warehouse, "companies") == {}  # the good file is not staged either
    with warehouse.connect() as conn:  # the refusal is on record; the read pages are gone
        assert conn.execute(select(import_batches.c.status, import_batches.c.error)).all() == [
            ("failed", first.removeprefix("hg-pipeline: tenant nopsa: import refused, nothing staged: "))]
        assert conn.execute(select(raw_inflight)).all() == []


def test_header_problems_and_broken_files_are_named(import_cli, tmp_path):
    code, _, err = import_cli("import", "nopsa", write(tmp_path, "companies.csv", "id,nmae\n1,Acme\n"))
    assert code == 2
    assert "companies.csv, line 1, column 2: unknown column 'nmae' (expected: id, name, type, identifier, status)" in err
    assert "companies.csv, line 1: the required column 'name' is missing" in err
    code, _, err = import_cli("import", "nopsa", write(tmp_path, "companies.csv", "id,name\n1,Acme,extra\n"))
    assert code == 2 and "companies.csv, line 2: 3 cells, the header has 2" in err
    latin = tmp_path / "members.csv"
    latin.write_bytes("id,name\n1,Zoë\n".encode("latin-1"))
    code, _, err = import_cli("import", "nopsa", str(latin))
    assert code == 2 and "members.csv: not UTF-8 text" in err
    code, _, err = import_cli("import", "nopsa", write(tmp_path, "people.csv", "id\n1\n"))
    assert code == 2 and "people.csv: the file name must start with the entity it holds" in err
    code, _, err = import_cli("import", "nopsa", write(tmp_path, "products.jsonl",
                                                '{"id": "p1", "name": "Veeam VBR"}\n{"id": "p2", "name": 7}\n'
                                                '{"id": "p3", "name": "x", "price": "1,200.00"}\n{oops\n'))
    assert code == 2
    assert "products.jsonl, line 2, field name: must be a string, got a number" in err
    assert "products.jsonl, line 3, field price: '1,200.00' is not a number (no thousands separators" in err
    assert "products.jsonl, line 4: not valid JSON" in err
    code, _, err = import_cli("import", "nopsa", write(tmp_path, "assets.json", '[{"id": "a1", "name": "FW"}, {"id": "a1", '
                                                                       '"name": "FW2"}, [1]]'))
    assert code == 2
    assert "assets.json, record 2, field id: id 'a1' given twice (first in assets.json, record 1)" in err
    assert "assets.json, record 3: not a JSON object" in err


def test_quoting_bom_separators_empty_cells_and_unicode(import_cli, warehouse, tmp_path):
    files = [
        write(tmp_path, "companies.csv", "\ufeffid;name;type;status\n"
                                         '1;"Acme; Ltd";Customer;\n'
                                         '2;"Zoë ""Z"" Ünïcode 株式会社";Vendor;Active\n', encoding="utf-8"),
        write(tmp_path, "contacts.tsv", "id\tcompany_id\tfirst_name\tlast_name\temail\ttype\n"
                                        "10\t1\tÅsa\t\tasa@example.com\tBilling\n"),
        write(tmp_path, "products.csv", "id|name|sku|category|price\n"
                                        'p1|"Microsoft 365, Business Premium"|M365-BP|Software / Licensing|22.50\n'),
    ]
    code, out, err = import_cli("import", "nopsa", *files)
    assert code == 0, err
    assert " staged (full): 2 companies, 2 company_types, 1 contacts, 1 contact_types, 1 products, " \
           "2 product_categories" in out
    assert staged(warehouse, "companies") == {
        "1": {"id": "1", "name": "Acme; Ltd", "type": "Customer"},  # the empty status cell is no value
        "2": {"id": "2", "name": 'Zoë "Z" Ünïcode 株式会社', "type": "Vendor", "status": "Active"},
    }
    assert staged(warehouse, "contacts")["10"] == {"id": "10", "company_id": "1", "first_name": "Åsa",
                                                   "email": "asa@example.com", "type": "Billing"}
    assert staged(warehouse, "products")["p1"]["price"] == "22.50"  # exact, as given
    assert set(staged(warehouse, "product_categories")) == {"Software", "Software/Licensing"}
    assert set(staged(warehouse, "company_types")) == {"Customer", "Vendor"}


def test_a_record_missing_from_the_next_full_import_is_soft_deleted_partial_keeps_it(import_cli, warehouse, tmp_path):
    store_mapping(warehouse, "nopsa", MAPPING)
    others = "".join(f"{n},Client {n},Customer\n" for n in range(4, 9))  # a sync may soft-delete up to 20%
    first = write(tmp_path, "companies.csv", "id,name,type\n1,Acme,Customer\n2,Beta,Vendor\n3,Gamma,Prospect\n" + others)
    code, out, err = import_cli("import", "nopsa", first, "--sync")
    assert code == 0, err
    assert "full sync of nopsa: success" in out
    kept = {str(n): f"Client {n}" for n in range(4, 9)}
    assert live(warehouse, companies) == {"1": "Acme", "2": "Beta", "3": "Gamma", **kept}

    code, out, err = import_cli("import", "nopsa", first, "--sync")  # the same files again change nothing
    assert code == 0, err
    assert "companies                    8         -        8        0        0         0        0        0" in out

    partial = write(tmp_path, "companies-update.csv", "id,name,type\n2,Beta Renamed,Vendor\n")
    code, _, err = import_cli("import", "nopsa", partial, "--partial", "--sync")
    assert code == 0, err
    assert live(warehouse, companies) == {"1": "Acme", "2": "Beta Renamed", "3": "Gamma", **kept}

    second = write(tmp_path, "companies.csv", "id,name,type\n1,Acme,Customer\n2,Beta Renamed,Vendor\n" + others)
    code, out, err = import_cli("import", "nopsa", second, "--sync")
    assert code == 0, err
    assert "missing from it, to be soft-deleted: 1 companies" in out
    assert live(warehouse, companies) == {"1": "Acme", "2": "Beta Renamed", **kept}
    with warehouse.connect() as conn:
        gone = conn.execute(select(companies.c.deleted_at).where(
            companies.c.tenant_id == "nopsa", companies.c.psa_id == "3")).scalar_one()
    assert gone is not None  # soft, never hard-deleted


def test_an_import_loads_contacts_and_products_through_the_mapping(import_cli, warehouse, tmp_path):
    store_mapping(warehouse, "nopsa", MAPPING)
    files = [
        write(tmp_path, "companies.json", json.dumps([{"id": 1, "name": "Acme", "type": "Customer"}])),
        write(tmp_path, "contacts.jsonl", '{"id": "c1", "company_id": "1", "first_name": "Ann", '
                                          '"email": "ann@acme.example", "type": "Billing"}\n'),
        write(tmp_path, "products.csv", "id,name,category\np1,S1 Control,Security/Endpoint Protection\n"),
    ]
    code, _, err = import_cli("import", "nopsa", *files, "--sync")
    assert code == 0, err
    assert live(warehouse, companies) == {"1": "Acme"}
    assert live(warehouse, contacts) == {"c1": "ann@acme.example"}
    with warehouse.connect() as conn:
        assert conn.execute(select(products.c.name, products.c.mapping_source).where(
            products.c.tenant_id == "nopsa")).all() == [("S1 Control", "category")]


def test_spend_lines_without_ids_are_known_by_company_product_month_and_currency(import_cli, warehouse, tmp_path):
    dup = write(tmp_path, "spend.csv", "company_id,product_id,month,amount,currency\n"
                                       "1,p1,2026-10,100.00,USD\n1,p1,2026-10,5.00,usd\n")
    code, _, err = import_cli("import", "nopsa", dup)
    assert code == 2
    assert "spend.csv, line 3: company_id, product_id, month and currency '1|p1||2026-10|USD' given twice " \
           "(first in spend.csv, line 2)" in err
    good = write(tmp_path, "spend.csv", "company_id,product_id,month,amount,currency\n"
                                        "1,p1,2026-10,100.00,USD\n1,p1,2026-11,-5.10,usd\n")
    assert import_cli("import", "nopsa", good)[0] == 0
    assert staged(warehouse, "spend")["1|p1||2026-11|USD"] == {
        "company_id": "1", "product_id": "p1", "month": "2026-11", "amount": "-5.10", "currency": "USD"}


def test_only_import_tenants_take_files_and_the_schema_is_printed(import_cli, tmp_path):
    assert import_cli("tenant", "add", "cw", "--source", "connectwise", "--base-url", "http://127.0.0.1:9",
               *[a for k in ("company_id", "public_key", "private_key", "client_id")
                 for a in ("--credential", f"{k}=env:NOPE_{k.upper()}")])[0] == 0
    code, _, err = import_cli("import", "cw", write(tmp_path, "companies.csv", "id,name\n1,A\n"))
    assert code == 2 and "tenant cw reads connectwise, not import files" in err
    code, out, _ = import_cli("import", "--schema", "contacts")
    assert code == 0 and json.loads(out) == formats.json_schema("contacts")


@pytest.mark.parametrize("entity", formats.IMPORT_ENTITIES)
def test_the_schemas_in_the_repo_are_the_format(entity):
    assert (formats.SCHEMA_DIR / f"{entity}.schema.json").read_text(encoding="utf-8") == formats.schema_text(entity)


SAMPLES = {
    "companies": [{"id": "1", "name": "Acme"}, {"id": 7, "name": "A", "type": "Customer"}, {"name": "no id"},
                  {"id": "1", "name": "A", "extra": 1}, {"id": "1", "name": 5}, {"id": "1", "name": "x" * 301}],
    "contacts": [{"id": "1", "last_name": "Li", "email": "li@example.com", "inactive": False},
                 {"id": "1", "last_name": "Li", "inactive": "no"}, {"id": "1", "last_name": "Li", "email": 3}],
    "products": [{"id": "p", "name": "n", "price": 12.5, "category": "A/B"}, {"id": "p", "name": "n", "price": "12.50"},
                 {"id": "p", "name": "n", "price": "12,50"}, {"id": "p", "name": "n", "category": "A/B/C"}],
    "spend": [{"company_id": "1", "product_id": "p", "month": "2026-01", "amount": "10", "currency": "EUR"},
              {"company_id": "1", "product_id": "p", "month": "2026-13", "amount": "10", "currency": "EUR"},
              {"company_id": "1", "product_id": "p", "month": "2026-01", "amount": "10", "currency": "EURO"},
              {"company_id": "1", "month": "2026-01", "amount": 10, "currency": "EUR"}],
}


@pytest.mark.parametrize("entity", SAMPLES)
def test_the_json_schema_and_the_validator_agree_on_field_types(entity):
    """What the schema refuses the validator refuses; a record the schema accepts may still be
    refused by a rule across fields (a spend line needs a product or a category)."""
    validator = jsonschema.Draft202012Validator(formats.json_schema(entity))
    for record in SAMPLES[entity]:
        schema_ok = validator.is_valid(record)
        ours, problems = check(entity, record)
        if not schema_ok:
            assert ours is None, (record, "accepted by us, refused by the schema")
        elif ours is None:
            assert [p.field for p in problems] == [None], (record, problems)


def test_the_shipped_examples_are_the_demo_dataset_and_the_import_demo_loads_them(pg_url, warehouse, tmp_path,
                                                                                 monkeypatch, capsys):
    from hg_pipeline.imports.examples import example_files, write_examples
    from hg_pipeline.warehouse.load import live_counts

    fresh = write_examples(tmp_path / "examples")
    assert [p.name for p in sorted(fresh)] == [p.name for p in example_files()]
    for written, shipped in zip(sorted(fresh), example_files()):
        assert written.read_bytes() == shipped.read_bytes(), shipped.name
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["demo", "--source", "import", "--database-url", pg_url]) == 0
    out = capsys.readouterr().out
    assert "registered tenant demo-msp (source: import)" in out and "full sync of demo-msp: success" in out
    counts = live_counts(warehouse, "demo-msp")
    assert counts["companies"] == 39 and counts["assets"] == 120 and counts["members"] == 12
    spend = staged_of(warehouse, "demo-msp", "spend")
    assert len(spend) == sum(1 for _ in open(example_files()[-1], encoding="utf-8")) - 1


def test_bench_import_prints_time_and_peak_rss_against_the_floor(pg_url, warehouse):
    import io

    from hg_pipeline.bench_import import bench_import

    out = io.StringIO()
    figures = bench_import(pg_url, out, rows=3_000)
    text = out.getvalue()
    assert "floor (COPY of the file into a plain table)" in text and "goal: peak RSS below 500 MB" in text
    assert figures["first import"]["maxrss_mb"] > 0
    assert "3,000 spend" in figures["first import"]["output"]
    assert "3,000 spend" in figures["same file again"]["output"]
    assert len(staged_of(warehouse, "bench-import", "spend")) == 3_000


def staged_of(warehouse, tenant_id: str, entity: str) -> set[str]:
    with warehouse.connect() as conn:
        return set(conn.scalars(select(raw_records.c.psa_id).where(
            raw_records.c.tenant_id == tenant_id, raw_records.c.entity == entity,
            raw_records.c.vanished_at.is_(None))))
