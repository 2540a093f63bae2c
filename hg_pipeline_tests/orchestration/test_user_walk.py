"""A new MSP's first steps, as a user types them: tenant add, initial sync, what to map,
a starter mapping, import, full sync, nothing left to map. The hg-pipeline command on the
test PostgreSQL against a ConnectWise simulator; expected numbers come from its dataset."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from hg_pipeline.cli import format_outcome, main
from hg_pipeline.orchestration.run import SyncOutcome
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS

TENANT = "acme"
CREDENTIAL_ARGS = [arg for key in DEMO_CREDENTIALS for arg in ("--credential", f"{key}=env:WALK_CW_{key.upper()}")]
SECTION = re.compile(r"^(company types|contact types|product categories) \((\d+) unmapped\):$")
ENTITY = re.compile(r"^(companies|contacts|products|members|assets): (\d+) pending$")
ROW = re.compile(r"^  +(\d+)  +(\S.*)$")


@pytest.fixture
def cli(pg_url, warehouse, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    for key, value in DEMO_CREDENTIALS.items():
        monkeypatch.setenv(f"WALK_CW_{key.upper()}", value)

    def run(*args: str) -> str:
        code = main([*args, "--database-url", pg_url])
        out, err = capsys.readouterr()
        assert code == 0, (args, err)
        return out

    return run


def expected_choices(dataset) -> dict[str, dict[str, int]]:
    """What the PSA has to map, with the records behind each, counted from the simulator's data."""
    companies = Counter(t["name"] for c in dataset.companies if not c.get("deletedFlag") for t in c["types"])
    contacts = Counter(t["name"] for c in dataset.contacts for t in c["types"])
    no_type = sum(1 for c in dataset.contacts if not c["types"])
    products = Counter()
    for product in dataset.catalog:
        products[product["category"]["name"]] += 1
        if product.get("subcategory"):
            products[f"{product['category']['name']}/{product['subcategory']['name']}"] += 1
    return {
        "company types": {t["name"]: companies[t["name"]] for t in dataset.company_types},
        "contact types": {**{t["description"]: contacts[t["description"]] for t in dataset.contact_types},
                          **({"(no type)": no_type} if no_type else {})},
        "product categories": {
            **{c["name"]: products[c["name"]] for c in dataset.categories},
            **{f"{s['category']['name']}/{s['name']}": products[f"{s['category']['name']}/{s['name']}"]
               for s in dataset.subcategories},
        },
    }


def read_pending(out: str) -> tuple[str, dict[str, dict[str, int]], dict[str, int]]:
    """(first line, kind -> name -> records, entity -> pending records) of `mapping pending`."""
    lines = out.splitlines()
    choices: dict[str, dict[str, int]] = {}
    pending: dict[str, int] = {}
    current = None
    for line in lines[1:]:
        if match := SECTION.match(line):
            current = choices.setdefault(match[1], {})
            declared = int(match[2])
        elif match := ENTITY.match(line):
            current = None
            pending[match[1]] = int(match[2])
        elif (match := ROW.match(line)) and current is not None:
            current[match[2].strip()] = int(match[1])
            assert len(current) <= declared
    return lines[0], choices, pending


def test_a_new_msp_sees_what_to_map_right_after_the_initial_sync(cli, simulator, tmp_path):
    dataset = simulator.dataset
    # a company type and a category the MSP set up but never used: listed with 0 records
    dataset.company_types.append({"id": dataset.next_id("company_types"), "name": "Reseller", "defaultFlag": False,
                                  "vendorFlag": False, "_info": dataset.company_types[0]["_info"]})
    dataset.categories.append({"id": dataset.next_id("categories"), "name": "Printing", "inactiveFlag": False,
                               "_info": dataset.categories[0]["_info"]})
    cli("tenant", "add", TENANT, "--source", "connectwise", "--base-url", simulator.base_url, *CREDENTIAL_ARGS,
        "--name", "Acme IT", "--notify-email", "ops@acme.example")

    expected = expected_choices(dataset)
    types_waiting = sum(len(names) for names in expected.values())
    # no mapping: every company and product waits, and so does every contact (its company waits)
    records_waiting = len(dataset.companies) + len(dataset.contacts) + len(dataset.catalog)

    out = cli("sync", TENANT, "--initial")
    assert "initial sync of acme: success" in out
    assert (f"tenant acme: {types_waiting} types and categories and {records_waiting} records wait for a decision"
            in out)
    assert "hg-pipeline mapping template acme" in out and "hg-pipeline mapping pending acme" in out

    first, choices, pending = read_pending(cli("mapping", "pending", TENANT))
    assert first == (f"tenant acme: {types_waiting} types and categories and {records_waiting} records "
                     "wait for a decision (no mapping stored yet)")
    assert choices == expected  # every type and category, those with no record included
    assert expected["company types"]["Reseller"] == 0 and expected["product categories"]["Printing"] == 0
    assert pending == {"companies": len(dataset.companies), "contacts": len(dataset.contacts),
                       "products": len(dataset.catalog)}

    template = cli("mapping", "template", TENANT)
    customers = expected["company types"]["Customer"]
    assert re.search(rf"^    Customer: client +# {customers} companies$", template, re.M)
    assert re.search(r"^    Competitor: ignore +# 1 company; decide: ", template, re.M)
    assert re.search(r"^    Reseller: ignore +# 0 companies; decide: ", template, re.M)
    for names in expected.values():
        for name in names:
            assert re.search(rf"^    \"?{re.escape(name)}\"?: ", template, re.M), name
    path = tmp_path / "mapping.yaml"
    path.write_text(template)
    assert "mapping version 1 stored" in cli("mapping", "import", TENANT, str(path))
    assert cli("mapping", "export", TENANT) == template

    # the types are covered now; the records wait for a sync with the new mapping
    out = cli("mapping", "pending", TENANT)
    first, choices, pending = read_pending(out)
    assert choices == {}
    assert first == f"tenant acme: {records_waiting} records wait for a decision (mapping version 1)"
    assert "decided with no mapping; mapping version 1 is in force now: `hg-pipeline sync acme --full`" in out

    assert "full sync of acme: success" in cli("sync", TENANT, "--full")
    assert cli("mapping", "pending", TENANT) == "tenant acme: nothing waits for a decision (mapping version 1)\n"


def test_the_initial_sync_summary_ends_with_what_waits():
    def last_line(types: int, records: int) -> str:
        stages = {"members_raw": {"received": 12}, "mapping_worklist": {"types_waiting": types,
                                                                         "records_waiting": records}}
        return format_outcome(SyncOutcome(TENANT, "initial", "run-1", True, 1.0, stages=stages)).splitlines()[-1]

    assert last_line(2, 1) == ("tenant acme: 2 types and categories and 1 record wait for a decision: "
                               "`hg-pipeline mapping pending acme` lists them, "
                               "`hg-pipeline mapping template acme` writes a starter mapping")
    assert last_line(0, 0) == "tenant acme: nothing waits for a decision"
    full = SyncOutcome(TENANT, "full", "run-2", True, 1.0, stages={"members_raw": {"received": 12}})
    assert "wait" not in format_outcome(full)
