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
