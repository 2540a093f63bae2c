"""Shared fixtures of the mapping tests (pure: no Dagster, no database)."""

import sys
from pathlib import Path

import pytest

# Lets `pytest` run from a checkout where hg_pipeline is not installed yet.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from hg_pipeline.mapping.categories import CategoryTree, global_category_paths  # noqa: E402


@pytest.fixture(scope="session")
def global_paths() -> set[str]:
    return set(global_category_paths())


@pytest.fixture
def tree() -> CategoryTree:
    return CategoryTree(tenant_id="acme")
