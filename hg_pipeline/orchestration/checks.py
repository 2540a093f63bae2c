"""Blocking data-quality checks on every `<entity>_mapped` asset.

They run in the map step itself (check specs with `blocking=True`), so a failure
stops the run before the load: the warehouse keeps its previous good rows.

* `valid`: the great-expectations suite of the entity (keys, allowed values, every
  contact/asset company and product category present, distributions summing to 100).
* `soft_delete_volume`: refuses a sync that would soft-delete more than a share
  (default 20%) of the tenant's live rows: rows whose PSA record vanished, and rows the
  mapping no longer loads (ignored or pending). The by-mapping ones pass up to what the
  operator accepted when storing the mapping version in force with `--force`
  (`mapping_versions.accepted_deletions`); vanished ones always count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue
from sqlalchemy import Engine

from hg_pipeline.entities import ENTITY_LOADS
from hg_pipeline.mapping.engine import MappingResult
from hg_pipeline.quality import CheckOutcome, check_mapped, check_volume
from hg_pipeline.orchestration.mapping_impact import live_count, live_psa_ids
from hg_pipeline.warehouse.mappings import current_mapping

VALID, VOLUME = "valid", "soft_delete_volume"
CHECK_CHUNK_ROWS = 50_000  # rows validated at once (a chunk of dicts and its frame: about 60 MB)


def check_specs(entity: str) -> list[AssetCheckSpec]:
    key = AssetKey(f"{entity}_mapped")
    return [
        AssetCheckSpec(VALID, asset=key, blocking=True,
                       description=f"great-expectations suite of the mapped {entity}"),
        AssetCheckSpec(VOLUME, asset=key, blocking=True,
                       description="refuses to soft-delete more than the allowed share of live rows, "
                                   "vanished from the PSA or left by mapping beyond what the mapping "
                                   "version accepted"),
    ]


def run_checks(engine: Engine, tenant_id: str, entity: str, result: MappingResult,
               upstream: MappingResult | None, category_ids: set[str], max_share: float) -> list[AssetCheckResult]:
    # A delta leaves every row outside its scope as it is.
    live = live_psa_ids(engine, tenant_id, entity, among=result.scope)
    live_rows = len(live) if result.scope is None else live_count(engine, tenant_id, entity)
    leaving = set(live)  # the frames take out the PSA ids they load, as the suite reads them
    valid = check_mapped(
        entity, _frames(result.rows, ["tenant_id", *ENTITY_LOADS[entity].columns], leaving),
        company_ids={row["id"] for row in upstream.rows} if upstream is not None else None,
        category_ids=category_ids | {c["id"] for c in result.categories} if entity == "products" else None,
        distributions=pd.DataFrame(result.distributions, columns=["tenant_id", "product_id", "category_id", "pct"])
        if entity == "products" else None,
    )
    vanished = set(leaving)
    if vanished:
        vanished.difference_update(d.psa_id for d in result.decisions)
    by_mapping = len(leaving) - len(vanished)
    in_force = current_mapping(engine, tenant_id)
    accepted = in_force.accepted_deletions.get(entity, 0) if in_force is not None else 0
    volume = check_volume(entity, current_active=live_rows, would_delete=len(leaving), max_share=max_share,
                          by_mapping=by_mapping, accepted=accepted)
    counts = {"live": live_rows, "vanished": len(vanished), "by_mapping": by_mapping,
              "accepted_by_mapping": accepted}
    if in_force is not None:
        counts["mapping_version"] = in_force.version
    return [_as_result(entity, VALID, valid), _as_result(entity, VOLUME, volume, counts)]


def _frames(rows: Sequence[dict], columns: list[str], leaving: set[str]) -> pd.DataFrame | Iterable[pd.DataFrame]:
    """The mapped rows as one frame, or in frames of CHECK_CHUNK_ROWS when they are more (a
    frame of a million rows would hold every value of the set at once, a GiB at ten times the
    large dataset); each frame's PSA ids leave `leaving`, so the rows are read once. The chunks
    can be read again (the checks fall back to this process when the quality worker stops)."""
    def frame(chunk: list[dict]) -> pd.DataFrame:
        built = pd.DataFrame(chunk, columns=columns)
        if leaving:
            leaving.difference_update(built["psa_id"])
        return built

    if len(rows) <= CHECK_CHUNK_ROWS:
        return frame(list(rows))
    return _Chunks(rows, frame)


class _Chunks:
    """The frames of `rows`, CHECK_CHUNK_ROWS at a time, built again on each iteration."""

    def __init__(self, rows: Sequence[dict], frame: Callable[[list[dict]], pd.DataFrame]) -> None:
        self._rows, self._frame = rows, frame

    def __iter__(self) -> Iterator[pd.DataFrame]:
        items = iter(self._rows)
        while chunk := list(islice(items, CHECK_CHUNK_ROWS)):
            yield self._frame(chunk)


def _as_result(entity: str, name: str, outcome: CheckOutcome, counts: dict | None = None) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=AssetKey(f"{entity}_mapped"),
        check_name=name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata={
            "summary": outcome.description,
            "failing_expectations": MetadataValue.json(outcome.failures),
            "sample_rows": MetadataValue.json(outcome.sample_rows),
            **(counts or {}),
        },
    )
