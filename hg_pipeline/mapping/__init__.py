"""The mapping document (schema, validation, YAML) and the pure mapping engine."""

from hg_pipeline.mapping.categories import CategoryTree, global_category_paths
from hg_pipeline.mapping.document import (
    MappingDocument,
    MappingError,
    Rule,
    Share,
    default_document,
    parse_document,
)
from hg_pipeline.mapping.engine import (
    Decision,
    MappingContext,
    MappingResult,
    map_assets,
    map_companies,
    map_contacts,
    map_entity,
    map_members,
    map_products,
)

__all__ = [
    "CategoryTree",
    "Decision",
    "MappingContext",
    "MappingDocument",
    "MappingError",
    "MappingResult",
    "Rule",
    "Share",
    "default_document",
    "global_category_paths",
    "map_assets",
    "map_companies",
    "map_contacts",
    "map_entity",
    "map_members",
    "map_products",
    "parse_document",
]
