"""Spend: map and load, after the products and companies loads (see warehouse/spend.py).

    spend_raw      the source's spend lines, staged (the extract factory of assets.py)
    spend_mapped   each line through the loaded companies and products (no PSA call)
    spend          the tenant's spend and spend_unmapped rows replaced in one transaction

Both run in the remap job (map + load groups): a remap that moves a product moves its spend.
"""

from dagster import AssetExecutionContext, AssetIn, AssetKey, Config, MaterializeResult, MetadataValue, Output, asset

from hg_pipeline.orchestration.assets import LOAD_GROUP, MAP_GROUP, _bulk_work, _fail, _stage
from hg_pipeline.orchestration.handoff import release, released_reason
from hg_pipeline.orchestration.metadata import preview
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.orchestration.resources import WarehouseResource
from hg_pipeline.warehouse.map_marks import read_mark
from hg_pipeline.warehouse.spend import (
    APART_COLUMNS,
    DerivedSpend,
    derive_spend,
    last_month_by_category,
    replace_spend,
    spend_counts,
)
from hg_pipeline.warehouse.tenants import TenantError, get_tenant


class SpendConfig(Config):
    """incremental: derive nothing when the staged lines, the loaded companies and products,
    the distributions, decisions and categories are those of the last spend load (nightly)."""

    incremental: bool = False


@asset(
    name="spend_mapped",
    group_name=MAP_GROUP,
    partitions_def=tenants_partitions,
    deps=["spend_raw", "companies", "products"],
    kinds={"python"},
    description="The staged spend lines through the loaded companies and products: a line per category (a "
                "distributed product's line split exactly by its percentages), the rest kept apart with its reason.",
)
@_stage("map spend")
def spend_mapped(context: AssetExecutionContext, config: SpendConfig, warehouse: WarehouseResource):
    tenant_id = context.partition_key
    engine = warehouse.engine()
    try:
        get_tenant(engine, tenant_id)
    except TenantError as exc:
        raise _fail(tenant_id, "map spend", exc) from None
    with _bulk_work():
        derived = derive_spend(engine, tenant_id,
                               unless=read_mark(engine, tenant_id, "spend") if config.incremental else None)
    if derived.unchanged:
        yield Output(derived, metadata={"tenant": tenant_id, "mode": "unchanged: nothing it reads changed since the "
                                                                     "last spend load"})
        return
    apart = [dict(zip(APART_COLUMNS[1:], row)) for row in derived.apart[:5]]
    yield Output(derived, metadata={
        "tenant": tenant_id,
        "mode": "derived",
        "lines": derived.lines,
        "rows": len(derived.rows),
        "split_lines": derived.split_lines,
        "kept_apart": len(derived.apart),
        "kept_apart_by_outcome": MetadataValue.json(derived.apart_by_outcome()),
        "kept_apart_sample": preview(apart, ("line_psa_id", "product_psa_id", "month", "amount", "outcome",
                                             "reason")),
    })
    release(derived, "rows", "apart")


@asset(
    name="spend",
    group_name=LOAD_GROUP,
    partitions_def=tenants_partitions,
    ins={"derived": AssetIn(key=AssetKey("spend_mapped"))},
    kinds={"postgres"},
    description="HighGround spend per company, category, product and month (and spend_unmapped, the lines no "
                "category takes), replaced in one transaction.",
)
@_stage("load spend")
def spend_load(context: AssetExecutionContext, warehouse: WarehouseResource, derived: DerivedSpend) -> MaterializeResult:
    tenant_id = context.partition_key
    lost = warehouse.lost_tenant_lock() or released_reason(derived)  # never write beside another sync
    if lost:
        raise _fail(tenant_id, "load spend", lost)
    engine = warehouse.engine()
    with _bulk_work():
        replace_spend(engine, tenant_id, derived)
    month, by_category = last_month_by_category(engine, tenant_id)
    rows, lines, kept_apart = spend_counts(engine, tenant_id)
    return MaterializeResult(metadata={
        "tenant": tenant_id,
        "mode": "unchanged" if derived.unchanged else "replaced",
        "rows": rows,
        "lines_mapped": lines,
        "lines_kept_apart": kept_apart,
        "last_month": month or "none",
        "spend_last_month": MetadataValue.md(spend_table(month, by_category)),
    })


def spend_table(month: str | None, by_category: list[tuple[str, str, object]]) -> str:
    """Markdown: the tenant's spend per category in `month`, largest first, with the total per currency."""
    if month is None:
        return "_no spend loaded_"
    lines = [f"Spend in {month}", "", "| category | amount | currency |", "|---|---:|---|"]
    lines += [f"| {path} | {amount:,.2f} | {currency} |" for path, currency, amount in by_category]
    totals: dict[str, object] = {}
    for _, currency, amount in by_category:
        totals[currency] = totals.get(currency, 0) + amount
    lines += [f"| **total** | **{amount:,.2f}** | {currency} |" for currency, amount in sorted(totals.items())]
    return "\n".join(lines) + "\n"
