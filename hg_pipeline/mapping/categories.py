"""HighGround's category tree: the global tree of `categories.yaml` plus a tenant's custom categories.

A category is named by its path, "Category" or "Category/Subcategory" (two levels at most;
the first "/" separates them). Ids come from `hg_pipeline.ids.category_id`: global
categories have no tenant, custom ones are scoped to their tenant.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import yaml

from hg_pipeline.ids import category_id

CATEGORIES_FILE = Path(__file__).with_name("categories.yaml")


def split_path(path: str) -> tuple[str, str | None]:
    """ "Cat/Sub" -> ("Cat", "Sub"); "Cat" -> ("Cat", None)."""
    parent, sep, child = path.partition("/")
    return (parent, child) if sep else (parent, None)


def parent_path(path: str) -> str | None:
    """The parent path of a subcategory path, None for a top-level category."""
    parent, child = split_path(path)
    return parent if child is not None else None


def is_valid_path(path: str) -> bool:
    """A non-empty "Category" or "Category/Subcategory" with non-blank, trimmed parts."""
    parts = path.split("/")
    return 1 <= len(parts) <= 2 and all(part and part == part.strip() for part in parts)


@lru_cache(maxsize=1)
def _global_paths() -> tuple[str, ...]:
    tree = yaml.safe_load(CATEGORIES_FILE.read_text(encoding="utf-8")) or {}
    paths: list[str] = []
    for category, subcategories in tree.items():
        paths.append(str(category))
        paths.extend(f"{category}/{sub}" for sub in subcategories or ())
    return tuple(paths)


def global_category_paths() -> list[str]:
    """Every path of HighGround's global tree, categories and subcategories, in file order."""
    return list(_global_paths())


class CategoryTree:
    """Global paths plus one tenant's custom paths, with their ids.

    A custom path that is also a global path is the global one. The parent of every
    subcategory is part of the tree (a missing custom parent is added).
    """

    def __init__(
        self,
        global_paths: Iterable[str] | None = None,
        custom_paths: Iterable[str] = (),
        *,
        tenant_id: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self._global: dict[str, str] = {}
        for path in global_category_paths() if global_paths is None else global_paths:
            self._add(self._global, path, None)
        self._custom: dict[str, str] = {}
        for path in custom_paths:
            self.add_custom(path)

    def _add(self, into: dict[str, str], path: str, tenant_id: str | None) -> None:
        parent = parent_path(path)
        if parent is not None and parent not in self._global and parent not in into:
            into[parent] = category_id(parent, tenant_id)
        into.setdefault(path, category_id(path, tenant_id))

    def copy(self, *, tenant_id: str | None = None) -> CategoryTree:
        """A copy to add custom categories to; `tenant_id` sets the tenant of a tree that has none."""
        if tenant_id is not None and self.tenant_id not in (None, tenant_id):
            raise ValueError(f"tree of tenant {self.tenant_id!r} cannot serve tenant {tenant_id!r}")
        clone = CategoryTree.__new__(CategoryTree)
        clone.tenant_id = self.tenant_id or tenant_id
        clone._global = self._global  # never mutated after construction
        clone._custom = dict(self._custom)
        return clone

    def add_custom(self, path: str) -> str:
        """Adds a custom path (and its missing parent); returns its id (the global id if global)."""
        if path in self._global:
            return self._global[path]
        if self.tenant_id is None:
            raise ValueError(f'custom category "{path}" needs a tenant_id')
        self._add(self._custom, path, self.tenant_id)
        return self._custom[path]

    def __contains__(self, path: object) -> bool:
        return path in self._global or path in self._custom

    def __len__(self) -> int:
        return len(self._global) + len(self._custom)

    def paths(self) -> list[str]:
        """Global paths then custom paths."""
        return [*self._global, *self._custom]

    def is_custom(self, path: str) -> bool:
        return path not in self._global and path in self._custom

    def id_of(self, path: str) -> str:
        """The id of a known path; KeyError for a path not in the tree."""
        found = self._global.get(path) or self._custom.get(path)
        if found is None:
            raise KeyError(path)
        return found

    def row(self, path: str) -> dict:
        """The load row of one known path."""
        custom = self.is_custom(path)
        parent = parent_path(path)
        return {
            "tenant_id": self.tenant_id if custom else None,
            "id": self.id_of(path),
            "name": split_path(path)[1] or path,
            "parent_id": self.id_of(parent) if parent is not None else None,
            "custom": custom,
            "path": path,
        }

    def rows(self, tenant_id: str | None = None, *, include_global: bool = True) -> list[dict]:
        """Load rows `{tenant_id, id, name, parent_id, custom, path}`, parents before children.

        Global rows have tenant_id None; custom rows carry the tree's tenant, whose ids they have.
        """
        if tenant_id is not None and self._custom and tenant_id != self.tenant_id:
            raise ValueError(f"custom categories belong to tenant {self.tenant_id!r}, not {tenant_id!r}")
        paths = [*self._global, *self._custom] if include_global else list(self._custom)
        ordered = sorted(paths, key=lambda p: parent_path(p) is not None)  # stable: parents first
        return [self.row(path) for path in ordered]
