"""Small helpers that make materialization metadata readable in the Dagster UI."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import MetadataValue


def preview(rows: Sequence[dict], columns: Sequence[str], limit: int = 5) -> MetadataValue:
    """A markdown table of the first rows."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join(_cell(row.get(c)) for c in columns) + " |\n" for row in rows[:limit]
    )
    return MetadataValue.md(head + body if rows else "_no rows_")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:60]
