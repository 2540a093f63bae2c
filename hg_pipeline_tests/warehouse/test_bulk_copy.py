"""`copy_rows` on PostgreSQL: every kind of value a load, a decision or spend writes comes
back as it went in, awkward characters included."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import text

from hg_pipeline.warehouse.bulk import copy_rows

COLUMNS = ("label", "amount", "count", "ratio", "flag", "at", "day")
ROWS = [
    ("plain", Decimal("12.30"), 3, 2.5, True, datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
     date(2026, 11, 27)),
    ("back\\slash\ttab\nline\r\\N", Decimal("-0.01"), -7, -1e-3, False,
     datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5))), date(1999, 12, 31)),
    ("", None, None, None, None, None, None),
    ("Ünïcode ✓ \\\\", Decimal("99999999999.99"), 2**62, 1e300, True,
     datetime(2026, 1, 1, tzinfo=timezone.utc), date(2026, 1, 1)),
]


def test_every_value_comes_back_as_it_went_in(warehouse):
    with warehouse.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE copied (label text, amount numeric(14, 2), count bigint,"
                          " ratio double precision, flag boolean, at timestamptz, day date) ON COMMIT DROP"))
        assert copy_rows(conn, "copied", COLUMNS, iter(ROWS)) == len(ROWS)
        back = conn.execute(text("SELECT * FROM copied")).all()
    assert [tuple(row) for row in back] == ROWS
