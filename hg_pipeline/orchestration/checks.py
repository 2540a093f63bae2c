"""Blocking data-quality checks on every `<entity>_mapped` asset.

They run in the map step itself (check specs with `blocking=True`), so a failure
stops the run before the load: the warehouse keeps its previous good rows.

* `valid`: the great-expectations suite of the entity (keys, allowed values, every
  contact/asset company and product category present, distributions summing to 100).
* `soft_delete_volume`: refuses a sync that would soft-delete more than a share
  (default 20%) of the tenant's rows because their PSA records vanished. Rows that
  leave because the mapping now ignores them are deliberate and are not counted.
"""

from __future__ import annotations

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue
from sqlalchemy import Engine, select

from hg_pipeline.entities import ENTITY_LOADS
from hg_pipeline.mapping.engine import MappingResult
from hg_pipeline.quality import CheckOutcome, check_mapped, check_volume
from hg_pipeline.warehouse.tables import LOADED_TABLES

VALID, VOLUME = "valid", "soft_delete_volume"


def check_specs(entity: str) -> list[AssetCheckSpec]:
    key = AssetKey(f"{entity}_mapped")
    return [
        AssetCheckSpec(VALID, asset=key, blocking=True,
                       description=f"great-expectations suite of the mapped {entity}"),
        AssetCheckSpec(VOLUME, asset=key, blocking=True,
                       description="refuses to soft-delete more than the allowed share of live rows"),
    ]


def run_checks(engine: Engine, tenant_id: str, entity: str, result: MappingResult,
               upstream: MappingResult | None, category_ids: set[str], max_share: float) -> list[AssetCheckResult]:
    frame = pd.DataFrame(result.rows, columns=["tenant_id", *ENTITY_LOADS[entity].columns])
    valid = check_mapped(
        entity, frame,
        company_ids={row["id"] for row in upstream.rows} if upstream is not None else None,
        category_ids=category_ids | {c["id"] for c in result.categories} if entity == "products" else None,
        distributions=pd.DataFrame(result.distributions, columns=["tenant_id", "product_id", "category_id", "pct"])
        if entity == "products" else None,
    )
    live = _live_psa_ids(engine, tenant_id, entity)
    staged = {d.psa_id for d in result.decisions}
    volume = check_volume(entity, current_active=len(live), would_delete=len(live - staged), max_share=max_share)
    return [_as_result(entity, VALID, valid), _as_result(entity, VOLUME, volume)]


def _live_psa_ids(engine: Engine, tenant_id: str, entity: str) -> set[str]:
    table = LOADED_TABLES[entity]
    with engine.connect() as conn:
        return set(conn.scalars(select(table.c.psa_id).where(
            table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None), table.c.origin == "psa")))


def _as_result(entity: str, name: str, outcome: CheckOutcome) -> AssetCheckResult:
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
        },
    )
