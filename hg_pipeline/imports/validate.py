"""One import record checked against its format (`formats.py`).

`check` turns what a file or a POST gives into the typed record that is staged (ids as text,
booleans, amounts as exact decimal text, currencies upper case), or lists what is wrong with it
as (field, reason) problems. The record must also normalize (`normalize.py`): whatever the
extract stage would quarantine is refused here, before anything is staged.

CSV cells are text (`text_values=True`): "" is an empty cell, "true"/"yes"/"1" a boolean, "12.50"
an amount. JSON values must have their JSON type (a name is a string, a flag is true or false);
an amount may be a number or a decimal string, an id a string or an integer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from hg_pipeline.connectors.records import EMAIL, RecordError, clean_text, shown
from hg_pipeline.imports import formats
from hg_pipeline.imports.formats import Field, format_of
from hg_pipeline.imports.normalize import normalize

_MONTH = re.compile(formats.MONTH_PATTERN)
_DECIMAL = re.compile(formats.DECIMAL_PATTERN)
_CURRENCY = re.compile(formats.CURRENCY_PATTERN)
_TRUE, _FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0"}


@dataclass(frozen=True)
class Problem:
    field: str | None  # None: the record as a whole
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class _Bad(Exception):
    pass


def check(entity: str, raw: Mapping, *, text_values: bool = False,
          normalizes: bool = True) -> tuple[dict | None, list[Problem]]:
    """(the typed record, []) or (None, the problems), in field order. `normalizes=False`
    leaves out the normalization (for a record checked before, which the stage normalizes)."""
    fmt = format_of(entity)
    problems: list[Problem] = []
    record: dict = {}
    for key in raw.keys() - fmt.by_name.keys():
        problems.append(Problem(str(key), f"unknown field (expected: {', '.join(fmt.names)})"))
    for f in fmt.fields:
        value = raw.get(f.name)
        if text_values and isinstance(value, str) and value.strip() == "":
            value = None
        if value is None:
            if f.required:
                problems.append(Problem(f.name, "is required"))
            continue
        try:
            record[f.name] = _typed(f, value, text_values)
        except _Bad as bad:
            problems.append(Problem(f.name, str(bad)))
    if problems:
        return None, problems
    whole = _whole_record(entity, record)
    if whole:
        return None, [Problem(None, whole)]
    if normalizes:
        try:
            normalize(entity, record)
        except RecordError as exc:
            return None, [Problem(None, str(exc))]
    return record, []


def _whole_record(entity: str, record: dict) -> str | None:
    if entity == "contacts" and not (record.get("first_name") or record.get("last_name")):
        return "first_name or last_name is required"
    if entity == "members" and not (record.get("name") or record.get("first_name") or record.get("last_name")):
        return "name, first_name or last_name is required"
    if entity == "spend" and not (record.get("product_id") or record.get("category")):
        return "product_id or category is required"
    return None


def _typed(f: Field, value: object, text_values: bool) -> object:
    kind = f.kind
    if kind == formats.BOOLEAN:
        return _boolean(value, text_values)
    if kind == formats.DECIMAL:
        return _decimal(value)
    if kind == formats.ID and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Bad(f"must be a string, got {_json_type(value)}")
    text = _text(f, value)
    if kind == formats.EMAIL and not EMAIL.match(text):
        raise _Bad(f"{shown(text)} is not an e-mail address")
    if kind == formats.MONTH and not _MONTH.match(text):
        raise _Bad(f"{shown(text)} is not a month as YYYY-MM")
    if kind == formats.CURRENCY:
        if not _CURRENCY.match(text):
            raise _Bad(f"{shown(text)} is not a 3-letter ISO 4217 currency code")
        return text.upper()
    if kind == formats.PATH:
        parts = [part.strip() for part in text.split("/")]
        if len(parts) > 2 or not all(parts):
            raise _Bad(f'{shown(text)} is not "Category" or "Category/Subcategory"')
        return "/".join(parts)
    return text


def _text(f: Field, value: str) -> str:
    try:
        text = clean_text(value, "value", f.name).strip()
    except RecordError as exc:
        raise _Bad(str(exc).removeprefix(f"value: {f.name} ")) from None
    if not text:
        raise _Bad("is empty")
    if f.max_length is not None and len(text) > f.max_length:
        raise _Bad(f"is {len(text):,} characters long, over the {f.max_length} allowed")
    return text


def _boolean(value: object, text_values: bool) -> bool:
    if isinstance(value, bool):
        return value
    if text_values and isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _Bad(f"{shown(value)} is not true or false (true/false, yes/no, 1/0)")
    raise _Bad(f"must be true or false, got {_json_type(value)}")


def _decimal(value: object) -> str:
    """An amount as exact decimal text ("1250.00" stays "1250.00")."""
    if isinstance(value, bool):
        raise _Bad("must be a number, got a boolean")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _Bad(f"{value} is not a finite number")
        return format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        raise _Bad(f"must be a number, got {_json_type(value)}")
    text = value.strip()
    if not _DECIMAL.match(text):
        hint = " (no thousands separators, a dot for decimals)" if re.search(r"[0-9][,.' ][0-9]", text) else ""
        raise _Bad(f"{shown(value)} is not a number{hint}")
    return text


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
