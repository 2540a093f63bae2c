"""What every source's spend reader shares: the window of months, month and money helpers.

A spend reader yields *line payloads*: one per line and month, with `id` (the line's psa_id,
stable across syncs), `month` ("YYYY-MM") and the vendor records it comes from; the source's
normalizer turns one into `entities.NORMALIZED_FIELDS["spend"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from hg_pipeline.connectors.records import RecordError

SPEND_MONTHS = 12  # the current month and the eleven before it
DEFAULT_CURRENCY = "USD"  # when the PSA names none (the simulated MSP bills in US dollars)
CENT = Decimal("0.01")


def window(until: str | None = None, months: int = SPEND_MONTHS) -> list[str]:
    """The months ("YYYY-MM") of the window ending with `until` (default: this month, UTC), oldest first."""
    if until is None:
        until = datetime.now(timezone.utc).strftime("%Y-%m")
    year, month = int(until[:4]), int(until[5:7])
    last = year * 12 + month - 1
    return [f"{index // 12:04d}-{index % 12 + 1:02d}" for index in range(last - months + 1, last + 1)]


def month_of(value: object) -> str | None:
    """"YYYY-MM" of a vendor date ("2025-03-01T00:00:00Z"), None when absent or unreadable."""
    if isinstance(value, str) and len(value) >= 7 and value[4] == "-" and value[:4].isdigit() and value[5:7].isdigit():
        return value[:7]
    return None


def months_between(first: str | None, last: str | None, months: list[str]) -> list[str]:
    """The months of `months` from `first` to `last` inclusive (None: open on that side)."""
    return [m for m in months if (first is None or first <= m) and (last is None or m <= last)]


def decimal(value: object, what: str, field: str) -> Decimal:
    """A vendor number as an exact Decimal (from its shortest text), or RecordError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RecordError(f"{what}: {field} is not a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RecordError(f"{what}: {field} is not a number") from None
    if not number.is_finite():
        raise RecordError(f"{what}: {field} is not a number")
    return number


def cents(amount: Decimal) -> str:
    """Exact decimal text of `amount` rounded half up to the cent."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def line_name(payload: Mapping) -> tuple[str, str]:
    """(the line payload's psa_id, how a RecordError names it), or RecordError without an id."""
    psa_id = payload.get("id")
    if not isinstance(psa_id, str) or not psa_id:
        raise RecordError("spend line: id is missing")
    return psa_id, f"spend line {psa_id}"


def spend_record(payload: Mapping, psa_id: str, *, company_psa_id: str, product_psa_id: str | None,
                 amount: Decimal, currency: str = DEFAULT_CURRENCY, description: str | None = None) -> dict:
    """The normalized spend line (`entities.NORMALIZED_FIELDS["spend"]`) of a PSA line payload."""
    return {"psa_id": psa_id, "company_psa_id": company_psa_id, "product_psa_id": product_psa_id,
            "category": None, "month": payload["month"], "amount": cents(amount), "currency": currency,
            "description": description}
