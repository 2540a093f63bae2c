"""Staging's JSON text: orjson where it can, json where it cannot, the same values back."""

import json

from hg_pipeline.warehouse.staging import json_text


def test_a_vendor_integer_beyond_64_bits_is_written_exactly():
    payload = {"id": 7, "serial": 10**30, "name": "Ünïcode"}
    assert json.loads(json_text(payload)) == payload


def test_the_text_is_compact_and_holds_no_raw_control_character():
    text = json_text({"a": "nul\x00 and tab\t", "b": [1, 2.5, None, True]})
    assert " " not in text.replace("nul\\u0000 and tab\\t", "")
    assert "\x00" not in text and "\t" not in text
    assert json.loads(text) == {"a": "nul\x00 and tab\t", "b": [1, 2.5, None, True]}


# What COPY's text form must escape, in ids and in the JSON of payloads and records: a
# backslash (JSON writes one before every quote it escapes), tab, line feed, carriage return.
_AWKWARD = {"id": 7, "name": 'Back\\slash "quoted"', "notes": "tab\there\nline\r\n", "serial": 10**30,
            "label": "Ünïcode ✓", "nested": {"path": "C:\\temp\\new"}, "nul": "\x00"}


def _stage_awkward(engine, run_id: str, psa_id: str):
    from hg_pipeline.extract import Reading

    reading = Reading.begin(engine, "acme", "companies", run_id, None)
    record = {"psa_id": psa_id, "name": _AWKWARD["name"], "notes": _AWKWARD["notes"]}
    reading.stage([[dict(_AWKWARD, id=psa_id)]], lambda entity, payload: dict(record), lambda payload: psa_id)
    return reading, record


def test_a_page_keeps_every_awkward_character_in_both_tables(engine):
    from sqlalchemy import select

    from hg_pipeline.warehouse.staging import staged_payload, staged_records
    from hg_pipeline.warehouse.tables import raw_inflight, raw_records
    from hg_pipeline_tests.warehouse.test_load import add

    add(engine, "acme")
    psa_id = "7\\a\tb"
    # The first read goes straight into raw_records...
    reading, record = _stage_awkward(engine, "run-1", psa_id)
    assert reading.progress.direct
    with engine.connect() as conn:
        payload_text, record_text, first_seen = conn.execute(select(
            raw_records.c.payload, raw_records.c.record, raw_records.c.first_seen_at)).one()
    assert json.loads(payload_text) == dict(_AWKWARD, id=psa_id)
    assert json.loads(record_text) == record
    assert first_seen is not None
    reading.merge(None)
    assert staged_payload(engine, "acme", "companies", psa_id) == dict(_AWKWARD, id=psa_id)
    staged = staged_records(engine, "acme", "companies")
    assert [(one.psa_id, one.record) for one in staged] == [(psa_id, record)]

    # ...a later one through raw_inflight.
    later, record = _stage_awkward(engine, "run-2", psa_id)
    assert not later.progress.direct
    with engine.connect() as conn:
        assert [(row.psa_id, json.loads(row.payload), json.loads(row.record)) for row in conn.execute(
            select(raw_inflight))] == [(psa_id, dict(_AWKWARD, id=psa_id), record)]
