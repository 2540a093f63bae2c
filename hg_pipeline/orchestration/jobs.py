"""Jobs: which stages each kind of sync runs, always for one tenant partition, and the tags
that every sync run carries."""

from urllib.parse import urlsplit

from dagster import AssetKey, AssetSelection, define_asset_job

from hg_pipeline.entities import DERIVED_ENTITIES, LOADED_ENTITIES, REFERENCE_ENTITIES
from hg_pipeline.orchestration.assets import EXTRACT_GROUP, LOAD_GROUP, MAP_GROUP
from hg_pipeline.orchestration.mapping_stage import RemapReach
from hg_pipeline.orchestration.partitions import tenants_partitions
from hg_pipeline.warehouse.tenants import Tenant

KIND_TAG = "hg/kind"
TENANT_TAG = "hg/tenant"
PSA_HOST_TAG = "hg/psa_host"
DEFAULT_PORTS = {"http": 80, "https": 443}


def psa_host(base_url: str | None) -> str | None:
    """'host:port' of a PSA base URL (the unit its rate limit applies to); None without a URL."""
    if not base_url:
        return None
    try:
        parts = urlsplit(base_url)
    except ValueError:  # e.g. an unclosed "[": the sync itself fails on it, with one line
        return None
    if not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number
        port = None
    return f"{parts.hostname.lower()}:{port}" if port else parts.hostname.lower()


def sync_tags(tenant: Tenant, kind: str) -> dict[str, str]:
    """Tags of a tenant's sync run: tenant, kind and, when it calls a PSA, the PSA host."""
    tags = {TENANT_TAG: tenant.tenant_id, KIND_TAG: kind}
    host = psa_host(tenant.base_url)
    if host and kind != "remap":  # a remap reads staging only: no PSA call to limit
        tags[PSA_HOST_TAG] = host
    return tags

# What the MSP needs in order to map: the type lists, the categories, companies, contacts,
# products and members (the records behind each type and category), then the worklist of
# what no rule covers yet. Assets are not needed to map.
INITIAL_ASSETS = [*(f"{e}_raw" for e in (*REFERENCE_ENTITIES, "companies", "contacts", "products", "members")),
                  "mapping_worklist"]

# The map stages of a full sync, a remap and a nightly map and load only what changed (staging
# since the last load, or a section of the mapping) when that is safe (mapping_stage.py,
# "delta"). A reconcile (the weekly one, `sync --reconcile`, the syncs import batches start)
# maps whole: every decision derived again.
DELTA_OPS_CONFIG = {f"{e}_mapped": {"config": {"incremental": True}} for e in (*LOADED_ENTITIES, *DERIVED_ENTITIES)}
# The nightly also reads changes only (extract stages).
NIGHTLY_OPS_CONFIG = {
    **{f"{e}_raw": {"config": {"incremental": True}}
       for e in (*REFERENCE_ENTITIES, *LOADED_ENTITIES, *DERIVED_ENTITIES)},
    **DELTA_OPS_CONFIG,
}
RECONCILE_OPS_CONFIG = {op: {"config": {"incremental": False}} for op in NIGHTLY_OPS_CONFIG}
OPS_CONFIG_BY_KIND = {"nightly": NIGHTLY_OPS_CONFIG, "remap": DELTA_OPS_CONFIG, "full": DELTA_OPS_CONFIG}

initial_sync_job = define_asset_job(
    "initial_sync",
    selection=AssetSelection.assets(*INITIAL_ASSETS),
    partitions_def=tenants_partitions,
    tags={KIND_TAG: "initial"},
    description="Pulls what the MSP maps (types, categories, companies, contacts, products, members) and "
                "lists what no rule covers yet (mapping_worklist).",
)

full_sync_job = define_asset_job(
    "full_sync",
    selection=AssetSelection.groups(EXTRACT_GROUP, MAP_GROUP, LOAD_GROUP),
    partitions_def=tenants_partitions,
    tags={KIND_TAG: "full"},
    config={"ops": DELTA_OPS_CONFIG},
    description="Extracts everything from the PSA, maps what changed (every record when the mapping's rules "
                "changed; run config incremental: false maps every record again), checks and loads it.",
)

remap_job = define_asset_job(
    "remap",
    selection=AssetSelection.groups(MAP_GROUP, LOAD_GROUP),
    partitions_def=tenants_partitions,
    tags={KIND_TAG: "remap"},
    config={"ops": DELTA_OPS_CONFIG},
    description="Re-applies the mapping in force to the staged records (the entities whose rules changed, and "
                "what staging changed); no PSA call.",
)

nightly_resync_job = define_asset_job(
    "nightly_resync",
    selection=AssetSelection.groups(EXTRACT_GROUP, MAP_GROUP, LOAD_GROUP),
    partitions_def=tenants_partitions,
    tags={KIND_TAG: "nightly"},
    config={"ops": NIGHTLY_OPS_CONFIG},
    description="Fetches what changed since the last extraction, then maps and loads.",
)

def remap_plan(reach: RemapReach | None) -> tuple[list[AssetKey] | None, dict]:
    """What a remap with `reach` (mapping_stage.remap_reach) runs: the remap job's assets to
    select (None: all of them) and their ops config. Left out: both stages of an entity it
    leaves, the load of one mapped only as an input. Spend's stages always run."""
    if reach is None or not (reach.left or reach.inputs):
        return None, DELTA_OPS_CONFIG
    names = [*(f"{entity}_mapped" for entity in (*reach.entities, *reach.inputs)), *reach.entities,
             *(f"{entity}_mapped" for entity in DERIVED_ENTITIES), *DERIVED_ENTITIES]
    return [AssetKey(name) for name in names], {op: c for op, c in DELTA_OPS_CONFIG.items() if op in names}


JOBS_BY_KIND = {
    "initial": initial_sync_job,
    "full": full_sync_job,
    "remap": remap_job,
    "nightly": nightly_resync_job,
}
