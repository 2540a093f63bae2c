"""Poison records from a hostile or broken PSA are quarantined with their reason, never fatal.

Over-long text, NUL and other control characters, ids that do not fit, JSON nested ~990 deep:
each costs its own record only. The limits come from the warehouse columns themselves.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from hg_pipeline.connectors import RecordError
from hg_pipeline.connectors.jsonsafe import MAX_DEPTH, decode_json, decode_records, within_depth
from hg_pipeline.connectors.records import LIMITS, UnreadableRecord
from hg_pipeline.orchestration.run import run_sync
from hg_pipeline.simulators.connectwise import nested_record
from hg_pipeline.warehouse.tables import companies, quarantine, raw_records
from hg_pipeline_tests.orchestration.conftest import instance, make_tenant, simulator  # noqa: F401 - fixtures
from hg_pipeline_tests.orchestration.test_full_sync import expected, live_rows

LONG_ID = int("9" * 70)


def _company(data, psa_id: int, **fields) -> dict:
    return {**data.companies[0], "id": psa_id, "identifier": f"Poison{psa_id}", **fields}


def poison(simulator) -> dict[tuple[str, str | None], str]:
    """Puts one poison record of each kind in the simulator; returns the quarantine it must cause."""
    data = simulator.dataset
    simulator.malformed = {
        "companies": [
            _company(data, 900001, name="N" * 301),
            _company(data, 900002, name="Nul\x00Byte Ltd"),
            _company(data, LONG_ID, name="Long Id Ltd"),
            _company(data, 900005, name="Escape \x1b[31m Ltd"),
            _company(data, 900006, name="Tab\tand\nnewline Ltd"),  # harmless: loads as spaces
        ],
        "contacts": [{**data.contacts[3], "id": 900011, "lastName": "Bell\x07"}],
        "configurations": [{**data.configurations[2], "id": 900021, "serialNumber": "S" * 201}],
        "catalog": [{**data.catalog[4], "id": 900031, "price": int("9" * 400)}],
    }
    simulator.poison = {"companies": [nested_record(900004, 990, name="Deep Ltd", types=[{"id": 1, "name": "Customer"}])]}
    return {
        ("companies", "900001"): "company 900001: name is 301 characters long, over the 300 of companies.name",
        ("companies", "900002"): "company 900002: name holds the control character U+0000",
        ("companies", str(LONG_ID)[:61] + "..."):
            "company: id 999999999999... has 70 digits, more than the 64 of raw_records.psa_id",
        ("companies", "900004"): "company 900004: nested deeper than 64 levels",
        ("companies", "900005"): "company 900005: name holds the control character U+001B",
        ("contacts", "900011"): "contact 900011: last_name holds the control character U+0007",
        ("assets", "900021"):
            "configuration 900021: serial_number is 201 characters long, over the 200 of assets.serial_number",
        ("products", "900031"): f"product 900031: price {'9' * 57}... is not a number",
    }


def test_each_poison_record_is_quarantined_and_the_rest_loads(warehouse, pg_url, instance, simulator,  # noqa: F811
                                                               make_tenant):  # noqa: F811
    want = poison(simulator)
    tenant = make_tenant("acme", simulator)
    outcome = run_sync(pg_url, tenant, "full", instance=instance)
    assert outcome.success, outcome.reason

    with warehouse.connect() as conn:
        rows = conn.execute(select(quarantine.c.entity, quarantine.c.psa_id, quarantine.c.reason,
                                   quarantine.c.payload, quarantine.c.sync_run_id)).all()
    assert {(entity, psa_id): reason for entity, psa_id, reason, *_ in rows} == want
    assert len(rows) == len(want) and {run for *_, run in rows} == {outcome.run_id}
    payloads = {psa_id: payload for _, psa_id, _, payload, _ in rows}
    assert "\\u0000" in payloads["900002"]  # the NUL kept as six characters
    deep = payloads["900004"]
    assert deep.startswith('{"id":900004,"name":"Deep Ltd"') and deep.endswith("...(cut)") and len(deep) < 2100
    assert json.loads(payloads["900001"])["name"] == "N" * 301  # a readable record is kept whole

    data = simulator.dataset
    for entity, psa_ids in expected(data).items():
        loaded = set(live_rows(warehouse, entity, tenant))
        extra = {"900006"} if entity == "companies" else set()  # the tab-and-newline one
        assert loaded == psa_ids | extra, entity
    assert live_rows(warehouse, "companies", tenant)["900006"]["name"] == "Tab and newline Ltd"
    assert outcome.stages["companies_raw"]["quarantined"] == 5
    assert outcome.stages["contacts"]["inserted"] == len(expected(data)["contacts"])
    assert outcome.stages["assets"]["inserted"] == len(expected(data)["assets"])


def test_a_poison_record_stays_quarantined_and_costs_nothing_on_the_next_sync(warehouse, pg_url, instance,
                                                                             simulator, make_tenant):  # noqa: F811
    poison(simulator)
    tenant = make_tenant("acme", simulator)
    assert run_sync(pg_url, tenant, "full", instance=instance).success
    before = {entity: live_rows(warehouse, entity, tenant) for entity in expected(simulator.dataset)}
    again = run_sync(pg_url, tenant, "full", instance=instance)
    assert again.success, again.reason
    assert again.stages["companies_raw"]["quarantined"] == 5 and again.stages["companies_raw"]["vanished"] == 0
    for entity, rows in before.items():
        assert set(live_rows(warehouse, entity, tenant)) == set(rows), entity
    with warehouse.connect() as conn:
        staged = set(conn.scalars(select(raw_records.c.psa_id).where(raw_records.c.entity == "companies")))
        names = list(conn.scalars(select(companies.c.name)))
    assert "900004" not in staged and "900001" not in staged
    assert not any("\x00" in name or "\x1b" in name for name in names)


# --- the pieces, against the simulator --------------------------------------------------


def test_the_limits_are_the_warehouse_columns():
    assert LIMITS["companies"]["name"] == (300, "companies.name")
    assert LIMITS["companies"]["types"] == (200, "companies.psa_type")
    assert LIMITS["contacts"]["email"] == (320, "contacts.email")
    assert LIMITS["products"]["name"] == (500, "products.name")
    assert LIMITS["assets"]["asset_type"] == (200, "assets.asset_type")
    assert LIMITS["product_categories"]["path"] == (300, "mapping_decisions.group_key")  # the smaller of two
    assert all(LIMITS[entity]["psa_id"] == (64, "raw_records.psa_id") for entity in LIMITS)


@pytest.mark.parametrize("fields, reason", [
    ({"name": "x" * 300}, None),
    ({"name": " padded\tname \r\n"}, None),
    ({"name": "x" * 301}, "company 7: name is 301 characters long, over the 300 of companies.name"),
    ({"name": "a\x00b"}, "company 7: name holds the control character U+0000"),
    ({"name": "a\x7fb"}, "company 7: name holds the control character U+007F"),
    ({"name": "a\x85b"}, "company 7: name holds the control character U+0085"),
    ({"name": "a\ud800b"}, "company 7: name is not valid Unicode (a lone surrogate)"),
    ({"identifier": "id\x00"}, "company 7: identifier holds the control character U+0000"),
    ({"types": [{"id": 1, "name": "T" * 201}]},
     "company 7: a types entry is 201 characters long, over the 200 of companies.psa_type"),
    ({"id": 0}, "company: id 0 is not a positive integer"),
    ({"id": -3}, "company: id -3 is not a positive integer"),
    ({"id": "7"}, "company: id '7' is not an integer"),
    ({"id": 10 ** 64}, "company: id 100000000000... has 65 digits, more than the 64 of raw_records.psa_id"),
])
def test_normalize_refuses_what_the_warehouse_cannot_hold(sim, fields, reason):
    from hg_pipeline.connectors import build_connector
    from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS

    payload = {**sim.dataset.companies[0], "id": 7, **fields}
    with build_connector("connectwise", sim.base_url, DEMO_CREDENTIALS) as connector:
        if reason is None:
            record = connector.normalize("companies", payload)
            assert "\t" not in record["name"] and "\n" not in record["name"]
        else:
            with pytest.raises(RecordError) as caught:
                connector.normalize("companies", payload)
            assert str(caught.value) == reason


def test_joined_category_path_fits_the_group_column(sim):
    from hg_pipeline.connectors import build_connector
    from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS

    product = {**sim.dataset.catalog[0], "id": 5, "category": {"id": 1, "name": "C" * 200},
               "subcategory": {"id": 2, "name": "S" * 120}}
    with build_connector("connectwise", sim.base_url, DEMO_CREDENTIALS) as connector:
        with pytest.raises(RecordError, match="category/subcategory is 321 characters long, over the 300 of "
                                              "mapping_decisions.group_key"):
            connector.normalize("products", product)


def test_a_page_with_a_990_deep_record_decodes_without_recursion(sim):
    from hg_pipeline.connectors import build_connector
    from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS

    sim.poison = {"companies": [nested_record(900004, 990, name="Deep Ltd")]}
    with build_connector("connectwise", sim.base_url, DEMO_CREDENTIALS, page_size=25) as connector:
        got = [record for page in connector.iter_pages("companies") for record in page]
        assert len(got) == len(sim.dataset.companies) + 1
        unreadable = [r for r in got if isinstance(r, UnreadableRecord)]
        assert [(r.psa_id, r.reason) for r in unreadable] == [("900004", "nested deeper than 64 levels")]
        assert [r["id"] for r in got if isinstance(r, dict)] == [c["id"] for c in sim.dataset.companies]
        with pytest.raises(RecordError, match="^company 900004: nested deeper than 64 levels$"):
            connector.normalize("companies", unreadable[0])
        # the id sweep leaves it out instead of failing
        assert len(list(connector.iter_ids("companies"))) == len(sim.dataset.companies)


def test_depth_scan_and_decoders():
    at_limit = b'[{"id":1,"d":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}]"
    over = b'[{"id":2,"d":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}]"
    assert within_depth(at_limit, MAX_DEPTH + 1) and not within_depth(over, MAX_DEPTH + 1)
    assert decode_records(at_limit)[0]["id"] == 1
    assert isinstance(decode_records(over)[0], UnreadableRecord)
    # brackets inside strings are not structure, whichever way they try to hide depth
    assert within_depth(b'[{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}]', 3)
    assert not within_depth(b'[[[[' + b'"]]]]",' * 3 + b'[[[[]]]]]]]]', 5)
    assert within_depth(b'[{"a":"\\"[[["}]', 2)
    # a deep body that is not a page is not JSON, and a broken page stays broken
    with pytest.raises(ValueError):
        decode_json(b'{"count":' + b"[" * 5000 + b"]" * 5000 + b"}")
    for broken in (b'[{"id":1},', b'[{"id":1},]', b'[{"id":1}] trailing', b'[{"id":1' + b"[" * 100):
        with pytest.raises(ValueError):
            decode_records(broken)
    # one record that is no valid JSON alone (an integer of 5,000 digits) costs only itself
    page = decode_records(b'[{"id":1},{"id":2,"n":' + b"9" * 5000 + b'},{"id":3}]')
    assert page[0] == {"id": 1} and page[2] == {"id": 3}
    assert page[1].psa_id == "2" and page[1].reason.startswith("not valid JSON")


@pytest.mark.parametrize("body", [
    b'[{"id":1,"n":18446744073709551616}]',  # beyond 64 bits: orjson refuses it, json reads it
    b'[{"id":1,"n":NaN,"m":-Infinity}]',  # not JSON, but what json.loads has always accepted
    b'[{"id":1,"s":"\\ud800 alone"}]',  # a lone surrogate escaped
    '[{"id":1,"s":"caf\u00e9"}]'.encode("utf-16"),  # UTF-16 with its byte order mark
    b'[{"id":1,"a":1,"a":2,"f":1.5e300,"z":-0.0}]',  # orjson's own path: the same values
])
def test_decoders_read_what_json_reads(body):
    """The decoders use orjson where it can and json for the rest: never a different answer."""
    assert decode_records(body) == json.loads(body)
    assert decode_json(body) == json.loads(body)


def test_a_body_that_is_not_utf8_still_raises_unicode_decode_error():
    with pytest.raises(UnicodeDecodeError):
        decode_records(b'[{"id":1,"s":"\xff"}]')
