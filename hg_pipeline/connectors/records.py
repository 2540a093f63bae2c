"""What a normalized record may hold, whichever PSA it comes from.

A connector's normalizer raises `RecordError` for a payload that breaks a hard rule, and
`check_record` then holds every normalized record to what the warehouse can store:

- text fits the column it ends up in: the limit of a field is the length of its column in
  `hg_pipeline/warehouse/tables.py` (`FIELD_COLUMNS` names the columns, the lengths are read
  from the table metadata, so a column change moves the limit with it);
- text holds no control character: tab, line feed and carriage return become spaces; NUL and
  every other control character (C0, DEL, C1) refuse the record, as does a lone UTF-16
  surrogate (PostgreSQL stores neither);
- ids fit `raw_records.psa_id` (64 characters).

The extract stage quarantines a refused record with the reason and the rest goes on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Column

from hg_pipeline.warehouse.tables import (
    assets,
    categories,
    companies,
    contacts,
    mapping_decisions,
    members,
    products,
    quarantine,
    raw_records,
)

_ID = (raw_records.c.psa_id, mapping_decisions.c.psa_id)
_GROUP = mapping_decisions.c.group_key  # the type or category a record is grouped under

# Normalized text field -> the warehouse columns its value is written to.
FIELD_COLUMNS: dict[str, dict[str, tuple[Column, ...]]] = {
    "company_types": {"psa_id": _ID, "name": (companies.c.psa_type, _GROUP)},
    "contact_types": {"psa_id": _ID, "name": (contacts.c.contact_type, _GROUP)},
    "product_categories": {"psa_id": _ID, "parent_psa_id": _ID, "name": (categories.c.name,),
                           "path": (categories.c.path, _GROUP)},
    "companies": {"psa_id": _ID, "name": (companies.c.name, companies.c.psa_name),
                  "types": (companies.c.psa_type, _GROUP)},
    "contacts": {"psa_id": _ID, "company_psa_id": _ID, "first_name": (contacts.c.first_name,),
                 "last_name": (contacts.c.last_name,), "email": (contacts.c.email,),
                 "types": (contacts.c.contact_type, _GROUP)},
    "products": {"psa_id": _ID, "sku": (products.c.sku,), "name": (products.c.name,),
                 "category": (categories.c.name,), "subcategory": (categories.c.name,)},
    "members": {"psa_id": _ID, "name": (members.c.name,), "email": (members.c.email,)},
    "assets": {"psa_id": _ID, "company_psa_id": _ID, "name": (assets.c.name,),
               "asset_type": (assets.c.asset_type, _GROUP), "serial_number": (assets.c.serial_number,)},
}
# Values built from several fields: a product is grouped (and its category created) under
# "Category/Subcategory".
JOINED_COLUMNS: dict[str, dict[tuple[str, ...], tuple[Column, ...]]] = {
    "products": {("category", "subcategory"): (categories.c.path, _GROUP)},
}


def _limit(columns: tuple[Column, ...]) -> tuple[int, str]:
    """(the smallest length among `columns`, "table.column" of that one)."""
    column = min(columns, key=lambda c: c.type.length)
    return column.type.length, f"{column.table.name}.{column.name}"


LIMITS: dict[str, dict[str, tuple[int, str]]] = {
    entity: {field: _limit(columns) for field, columns in fields.items()} for entity, fields in FIELD_COLUMNS.items()
}
ID_LENGTH = _limit(_ID)[0]

EMAIL = re.compile(r"^[^@\s<>(),;:\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_SPACES = re.compile(r"[\t\n\r]")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_UNUSUAL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class RecordError(ValueError):
    """A payload that cannot become a normalized record; the message says why."""


@dataclass(frozen=True)
class UnreadableRecord:
    """A record of a page that was not decoded (nested too deep, or not valid JSON while the
    rest of the page is): what is known of it, for the quarantine."""

    reason: str
    psa_id: str | None  # its own top-level "id", when one could be read
    excerpt: str  # the start of its JSON text


def shown(value: object, width: int = 60) -> str:
    """repr(value), cut to `width` characters: a value quoted in a reason stays short."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def clean_text(value: str, what: str, field: str) -> str:
    """`value` with tab, line feed and carriage return as spaces; RecordError for any other
    control character or a lone surrogate."""
    if _UNUSUAL.search(value) is None:  # nearly every value: one scan
        return value
    if _SPACES.search(value):
        value = _SPACES.sub(" ", value).strip()
    bad = _FORBIDDEN.search(value)
    if bad:
        raise RecordError(f"{what}: {field} holds the control character U+{ord(bad.group()):04X}")
    if _SURROGATE.search(value):
        raise RecordError(f"{what}: {field} is not valid Unicode (a lone surrogate)")
    return value


def check_record(entity: str, record: dict, what: str) -> dict:
    """`record` with its text cleaned (see `clean_text`), or RecordError for a value that does
    not fit its warehouse column or holds a forbidden character."""
    limits = LIMITS.get(entity, {})
    unusual = _UNUSUAL.search
    for field, value in record.items():
        if isinstance(value, str):
            # Inline for the usual value (clean, within its limit): this runs for every field
            # of every record of a sync.
            if unusual(value) is not None:
                record[field] = value = clean_text(value, what, field)
            limit = limits.get(field)
            if limit is not None and len(value) > limit[0]:
                _check_length(value, limit, what, field)
        elif isinstance(value, list):
            record[field] = value = [clean_text(item, what, field) if isinstance(item, str) else item
                                     for item in value]
            for item in value:
                if isinstance(item, str):
                    _check_length(item, limits.get(field), what, f"a {field} entry")
    for fields, columns in JOINED_COLUMNS.get(entity, {}).items():
        joined = "/".join(record[field] for field in fields if record.get(field))
        _check_length(joined, _limit(columns), what, "/".join(fields))
    return record


def _check_length(value: str, limit: tuple[int, str] | None, what: str, field: str) -> None:
    if limit is not None and len(value) > limit[0]:
        raise RecordError(f"{what}: {field} is {len(value):,} characters long, over the {limit[0]} of {limit[1]}")


def id_text(value: object, what: str) -> str:
    """The text of a PSA id the vendor declares an integer: RecordError unless it is a
    positive integer that fits `raw_records.psa_id`."""
    if value is None:
        raise RecordError(f"{what}: id missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{what}: id {shown(value)} is not an integer")
    if value <= 0:
        raise RecordError(f"{what}: id {value} is not a positive integer")
    if value.bit_length() > 4000:  # str() refuses integers of more than 4,300 digits
        raise RecordError(f"{what}: id has more than 1,200 digits, more than the {ID_LENGTH} of raw_records.psa_id")
    text = str(value)
    if len(text) > ID_LENGTH:
        raise RecordError(f"{what}: id {text[:12]}... has {len(text):,} digits, "
                          f"more than the {ID_LENGTH} of raw_records.psa_id")
    return text


def payload_id(payload: object) -> str | None:
    """The id to file a quarantined payload under: its own `id`, safe for the column (cut to
    fit, with "..." at the end when cut)."""
    if isinstance(payload, UnreadableRecord):
        value = payload.psa_id
    else:
        value = payload.get("id") if isinstance(payload, Mapping) else None
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, int) and value.bit_length() > 4000:
        return "(an integer of more than 1,200 digits)"
    text = safe_text(str(value))
    limit = quarantine.c.psa_id.type.length
    return text if len(text) <= limit else text[: limit - 3] + "..."


PAYLOAD_LIMIT = 100_000  # characters of a quarantined payload that are kept


def payload_text(payload: object) -> str | None:
    """A quarantined payload as text PostgreSQL stores: JSON (ASCII, so NUL is the six
    characters \\u0000), cut to PAYLOAD_LIMIT characters."""
    if payload is None:
        return None
    if isinstance(payload, UnreadableRecord):
        text = safe_text(payload.excerpt)
    else:
        try:
            text = json.dumps(payload, default=str)
        except (RecursionError, ValueError, TypeError) as error:  # never from a decoded page
            text = json.dumps({"unstorable_payload": type(error).__name__})
    return text if len(text) <= PAYLOAD_LIMIT else text[:PAYLOAD_LIMIT] + "...(cut)"


def safe_text(text: str) -> str:
    """`text` with NUL and lone surrogates written as JSON escapes (\\u0000, \\udc80)."""
    if "\x00" in text or _SURROGATE.search(text):
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text.replace("\x00", "\\u0000"))
    return text


# --- field readers for normalizers (`what` names the record in a RecordError) ---------


def text_value(payload: Mapping, key: str, what: str, *, required: bool = False) -> str | None:
    value = payload.get(key)
    if type(value) is str and value and not value[0].isspace() and not value[-1].isspace():
        return value  # the usual value: text already without surrounding spaces
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RecordError(f"{what}: {key} is missing")
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise RecordError(f"{what}: {key} should be text, got {type(value).__name__}")
    return str(value).strip()


def ref(payload: Mapping, key: str, what: str) -> Mapping | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RecordError(f"{what}: {key} should be an object, got {type(value).__name__}")
    return value


def ref_name(payload: Mapping, key: str, what: str, field: str = "name") -> str | None:
    found = ref(payload, key, what)
    return None if found is None else text_value(found, field, f"{what} {key}")


def ref_id(payload: Mapping, key: str, what: str) -> str | None:
    found = ref(payload, key, what)
    if found is None or found.get("id") is None:
        return None
    return id_text(found.get("id"), f"{what} {key}")


def number(payload: Mapping, key: str, what: str) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OverflowError
    except OverflowError:  # also an integer too large for a float
        raise RecordError(f"{what}: {key} {shown(value)} is not a number") from None
    return float(value)


def flag(payload: Mapping, key: str, default: bool = False) -> bool:
    value = payload.get(key)
    return default if value is None else bool(value)


def email_address(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not EMAIL.match(value):
        raise RecordError(f"{what}: {shown(value)} is not an email address")
    return value


def normalized(entity: str, payload: object, build, label: str) -> dict:
    """`build(payload)` checked: the one way every connector turns a payload into the normalized
    record of `entity`. An unreadable or non-object payload, a normalizer's RecordError and any
    error no rule foresaw become a RecordError naming the record (`label` is its kind's word)."""
    if isinstance(payload, UnreadableRecord):
        raise RecordError(f"{label}{' ' + payload_id(payload) if payload.psa_id else ''}: {payload.reason}")
    if not isinstance(payload, Mapping):
        raise RecordError(f"{entity}: expected a JSON object, got {type(payload).__name__}")
    try:
        record = build(payload)
    except RecordError:
        raise
    except (ArithmeticError, LookupError, TypeError, ValueError) as error:  # what no rule foresaw
        raise RecordError(f"{label} {payload_id(payload) or ''}: cannot be read ({type(error).__name__})") from None
    return check_record(entity, record, f"{label} {record['psa_id']}")
