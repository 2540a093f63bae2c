"""Data-quality checks on mapped frames, with great-expectations 1.x in memory.

Pure module: no Dagster, no database. The orchestration layer turns a `CheckOutcome`
into an asset check result.

One ephemeral GE context is built per process (building it is slow) and reused; its
progress bars are switched off through the context variables
(`ProgressBarsConfig(globally=False, metric_calculations=False)`), analytics are off
(`GX_ANALYTICS_ENABLED=false`) and GE's loggers only speak at ERROR.

Referential checks ("company_id in company_ids") are computed with pandas `isin` into a
boolean helper column that GE then validates: giving GE the id set itself as a
`value_set` makes it re-serialise the whole set dozens of times per validation
(about ten seconds for 100,000 ids). The failure is still reported on the real column
with the real unexpected values.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import importlib.util
import json
import logging
import math
import os
import sys
import threading
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hg_pipeline.entities import ENTITY_LOADS, HG_COMPANY_TYPES

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

INVITE_STATUSES = ("not_invited", "invited", "accepted")
KEY_COLUMNS = ("id", "psa_id", "tenant_id")  # validated over the whole set when it comes in chunks
MAPPING_SOURCES = ("record", "distribution", "category", "smart")
# Deliberately simple: one @, no whitespace, a dot in the domain.
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
DISTRIBUTION_TOLERANCE = 1e-6
# The share of a tenant's live rows one sync may soft-delete (the soft_delete_volume check,
# the import guard of `mapping import`); the map assets' run config can raise it for one run.
DEFAULT_MAX_SOFT_DELETE_SHARE = 0.2

SAMPLE_SIZE = 5
_PARTIAL_UNEXPECTED = 20  # GE lists this many unexpected values; we keep 5 distinct ones
_META_KEY = "hg_check"
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": _PARTIAL_UNEXPECTED}


@dataclass
class CheckOutcome:
    name: str  # e.g. "companies_mapped_valid"
    passed: bool
    # One per failing expectation: {"expectation", "column", "unexpected_count", "sample"}.
    failures: list[dict] = field(default_factory=list)
    sample_rows: list[dict] = field(default_factory=list)  # up to 5 offending rows, JSON-safe
    description: str = ""  # one line summarising the failures


# --------------------------------------------------------------------------- GE context

_lock = threading.Lock()
_context = None
_batch_definition = None


def _quiet_ge_logging() -> None:
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)


def warm_up() -> None:
    """Import great-expectations and build the shared context now (a few seconds), in the
    calling thread. Not in a background thread: two threads importing at once broke a remap
    (`partially initialized module 'sqlalchemy.orm.exc'`; see docs/decisions.md)."""
    with _lock:
        _get_batch_definition()


def ready() -> bool:
    """Whether great-expectations is loaded and its context built in this process."""
    return _batch_definition is not None


class _DeferredModule(types.ModuleType):
    """Stands for a module until an attribute of it is read, then imports the real one, which
    takes its place (in `sys.modules`, or on its parent package)."""

    def __getattr__(self, attr: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


# great-expectations imports these for expectations no suite here uses (distribution tests,
# their charts): 0.65 s and 0.17 s of its 2.2 s import.
_DEFERRED = ("scipy.stats", "altair")


def _defer_unused_imports() -> None:
    """Let great-expectations' `from scipy import stats` and `import altair as alt` get stand-ins
    that import the real module at its first use (none, in these suites). A submodule's stand-in
    is an attribute of its package, a package's an entry of `sys.modules` (whose `__spec__`, None,
    is all the import system reads of it); `importlib.util.LazyLoader` does not help here, as the
    import system reads a lazy module's `__spec__`, which loads it. A module imported already,
    or absent, is left alone."""
    for name in _DEFERRED:
        if name in sys.modules or importlib.util.find_spec(name.partition(".")[0]) is None:
            continue
        package, _, attribute = name.rpartition(".")
        if not package:
            sys.modules[name] = _DeferredModule(name)
            continue
        parent = importlib.import_module(package)
        if attribute not in vars(parent):
            setattr(parent, attribute, _DeferredModule(name))


def _get_batch_definition():
    """The process-wide ephemeral context's whole-dataframe batch definition."""
    global _context, _batch_definition
    if _batch_definition is None:
        _defer_unused_imports()
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        _quiet_ge_logging()
        # GE fingerprints every frame below this many bytes (an MD5 over pandas' hash of every
        # value) for a batch marker nothing here reads, twice per validation: a third of the
        # time of validating 285,000 mapped rows. 0: no fingerprint; the validation is the same.
        pandas_execution_engine.HASH_THRESHOLD = 0
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = context.data_sources.add_or_update_pandas("hg_quality").add_dataframe_asset("frame")
        _batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        _context = context
    return _batch_definition


def _validate(df: pd.DataFrame, expectations: list) -> list:
    """Validate `df` against `expectations`; return GE's results in the same order.

    GE does not keep the suite's order, so each expectation is tagged in `meta`.
    """
    import great_expectations as gx
    from great_expectations.data_context.data_context.context_factory import project_manager

    for position, expectation in enumerate(expectations):
        expectation.meta = {**(expectation.meta or {}), _META_KEY: position}
    with _lock:
        batch_definition = _get_batch_definition()
        # V1 validators look the datasource up on GE's "current" context: make it ours for
        # the validation, then give back whatever other code in the process had set.
        try:
            previous = project_manager.get_current_project()
        except Exception:  # noqa: BLE001 - none set
            previous = None
        project_manager.set_project(_context)
        try:
            batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
            suite = gx.ExpectationSuite(name="hg_quality", expectations=expectations)
            results = batch.validate(suite, result_format=_RESULT_FORMAT).results
        finally:
            if previous is not None:
                project_manager.set_project(previous)
    return sorted(results, key=lambda r: r.expectation_config.meta[_META_KEY])


# --------------------------------------------------------------------------- suites


@dataclass
class _Check:
    """One expectation plus how to report it."""

    expectation: Any  # a gx.expectations.Expectation
    column: str | None  # the column reported (may differ from the one GE looked at)
    label: str  # description fragment, e.g. "psa_id not unique"
    unit: str = "row"
    source_column: str | None = None  # take sample values from here (helper-column checks)


def _mapped_checks(
    entity: str, frame: pd.DataFrame, company_ids: set[str] | None, category_ids: set[str] | None,
    *, keys: bool = True,
) -> tuple[list[_Check], pd.DataFrame]:
    """Expectations for one entity; may add boolean helper columns to (a copy of) `frame`.
    Without `keys`, those that need the whole set (unique ids, one tenant): a chunk's."""
    import great_expectations as gx

    E = gx.expectations
    checks: list[_Check] = []
    required = ("tenant_id",) + ENTITY_LOADS[entity].columns
    present = set(frame.columns)
    for column in required:
        if column not in present:
            checks.append(_Check(E.ExpectColumnToExist(column=column), column, f"column {column} missing", unit=""))

    def has(column: str) -> bool:
        return column in present

    def not_null(column: str) -> None:
        if has(column):
            checks.append(_Check(E.ExpectColumnValuesToNotBeNull(column=column), column, f"{column} null"))

    def unique(column: str) -> None:
        if has(column):
            checks.append(_Check(E.ExpectColumnValuesToBeUnique(column=column), column, f"{column} not unique"))

    def in_set(column: str, values: Iterable[str]) -> None:
        if has(column):
            checks.append(_Check(
                E.ExpectColumnValuesToBeInSet(column=column, value_set=list(values)), column,
                f"{column} not in set",
            ))

    def known(column: str, ids: set[str] | None, what: str) -> None:
        nonlocal frame
        if ids is None or not has(column):
            return
        helper = f"__{column}_in_{what}"
        values = frame[column]
        if helper not in frame.columns:
            frame = frame.assign(**{helper: values.isin(ids) | values.isna()})  # nulls: not_null's job
        checks.append(_Check(
            E.ExpectColumnValuesToBeInSet(column=helper, value_set=[True]), column,
            f"{column} not in {what}", source_column=column,
        ))

    for column in ("id", "psa_id", "tenant_id"):
        not_null(column)
    if keys:
        checks.extend(_key_checks(frame))

    if entity == "companies":
        not_null("name")
        in_set("hg_type", HG_COMPANY_TYPES)
    if entity in ("contacts", "assets"):
        not_null("company_id")
        known("company_id", company_ids, "company_ids")
    if entity == "contacts" and has("email"):
        checks.append(_Check(
            E.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_REGEX, mostly=1.0), "email",
            "email not an address",
        ))
    if entity in ("contacts", "members"):
        in_set("invite_status", INVITE_STATUSES)
    if entity == "products":
        not_null("category_id")
        known("category_id", category_ids, "category_ids")
        in_set("mapping_source", MAPPING_SOURCES)
    return checks, frame


def _key_checks(frame: pd.DataFrame) -> list[_Check]:
    """The expectations on the whole set's keys: ids unique, one tenant."""
    import great_expectations as gx

    E = gx.expectations
    checks = [_Check(E.ExpectColumnValuesToBeUnique(column=column), column, f"{column} not unique")
              for column in ("id", "psa_id") if column in frame.columns]
    if "tenant_id" in frame.columns:
        checks.append(_Check(
            E.ExpectColumnUniqueValueCountToBeBetween(column="tenant_id", min_value=None, max_value=1),
            "tenant_id", "tenant_id not a single value",
        ))
    return checks


# --------------------------------------------------------------------------- reporting


def _json_safe(value: Any) -> Any:
    """A value json.dumps accepts: NaN/NA/NaT -> None, numpy -> python, dates -> ISO."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float):
        return None if math.isnan(value) else (value if math.isfinite(value) else str(value))
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _rows(frame: pd.DataFrame, positions: Iterable[int], columns: list[str]) -> list[dict]:
    rows = frame.iloc[list(positions)][columns].to_dict(orient="records")
    return [{str(k): _json_safe(v) for k, v in row.items()} for row in rows]


def _distinct(values: Iterable[Any], limit: int = SAMPLE_SIZE) -> list:
    sample: list = []
    for value in values:
        value = _json_safe(value)
        if value not in sample:
            sample.append(value)
            if len(sample) == limit:
                break
    return sample


def _exception_message(result) -> str | None:
    """First line of the error GE caught while evaluating an expectation, if any.

    GE reports either one flat dict or one dict per failing metric.
    """
    info = getattr(result, "exception_info", None) or {}
    candidates = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            lines = str(candidate.get("exception_message") or "error").strip().splitlines()
            return lines[0] if lines else "error"
    return None


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


class _Report:
    """Collects failures, sample rows and description fragments across validations."""

    def __init__(self) -> None:
        self.failures: list[dict] = []
        self.sample_rows: list[dict] = []
        self.fragments: list[str] = []  # one per failure, in the same order
        self._reported: dict[tuple[str, str], int] = {}  # (expectation, label) -> its failure's position

    def add_rows(self, rows: list[dict]) -> None:
        room = SAMPLE_SIZE - len(self.sample_rows)
        for row in rows:
            if room <= 0:
                break
            if row not in self.sample_rows:
                self.sample_rows.append(row)
                room -= 1

    def add_results(self, checks: list[_Check], results: list, frame: pd.DataFrame,
                    row_columns: list[str], row_source=None) -> None:
        for check, result in zip(checks, results, strict=True):
            if result.success:
                continue
            self.add_failure(check, result, frame, row_columns, row_source)

    def add_failure(self, check: _Check, result, frame: pd.DataFrame, row_columns: list[str],
                    row_source) -> None:
        expectation = result.expectation_config.type
        info = dict(result.result or {})
        failure: dict[str, Any] = {"expectation": expectation, "column": check.column}
        message = _exception_message(result)
        if message is not None:
            failure.update(unexpected_count=None, sample=[], error=message)
            self.fragments.append(f"{expectation} on {check.column} raised: {message}")
            self._add(expectation, check, failure)
            return

        # frames are validated with a RangeIndex, so GE's indexes are positions
        positions = [int(i) for i in info.get("partial_unexpected_index_list") or []]
        if expectation == "expect_column_to_exist":
            failure.update(unexpected_count=None, sample=[])
            self.fragments.append(check.label)
        elif expectation == "expect_column_unique_value_count_to_be_between":
            values = frame[check.column]
            counts = values.value_counts(dropna=True)
            majority = counts.index[0] if len(counts) else None
            odd = values.ne(majority) & values.notna()
            failure.update(unexpected_count=int(odd.sum()), sample=_distinct(counts.index),
                           observed_value=_json_safe(info.get("observed_value")))
            positions = [int(p) for p in odd.to_numpy().nonzero()[0][:SAMPLE_SIZE]]
            shown = ", ".join(str(v) for v in failure["sample"])
            self.fragments.append(f"{check.label} ({_json_safe(info.get('observed_value'))} values: {shown})")
        else:
            count = int(info.get("unexpected_count") or 0)
            if check.source_column is not None:
                sample = _distinct(frame[check.source_column].iloc[positions]) if positions else []
            else:
                sample = _distinct(info.get("partial_unexpected_list") or [])
            failure.update(unexpected_count=count, sample=sample)
            self.fragments.append(f"{check.label} ({_plural(count, check.unit)})")
        self._add(expectation, check, failure)
        if positions:
            if row_source is not None:
                self.add_rows(row_source(positions[:SAMPLE_SIZE]))
            else:
                self.add_rows(_rows(frame, positions[:SAMPLE_SIZE], row_columns))

    def _add(self, expectation: str, check: _Check, failure: dict) -> None:
        """Record `failure` (its fragment is the last one added); the same expectation failing
        in another chunk of the set adds its count and samples to the first one."""
        key = (expectation, check.label)
        if key not in self._reported:
            self._reported[key] = len(self.failures)
            self.failures.append(failure)
            return
        fragment = self.fragments.pop()
        position = self._reported[key]
        first = self.failures[position]
        if first.get("unexpected_count") is None or failure.get("unexpected_count") is None:
            return  # a column missing or an expectation that raised: said once
        first["unexpected_count"] += failure["unexpected_count"]
        first["sample"] = _distinct([*first["sample"], *failure["sample"]])
        self.fragments[position] = fragment.replace(
            f"({_plural(failure['unexpected_count'], check.unit)})",
            f"({_plural(first['unexpected_count'], check.unit)})")

    def outcome(self, name: str) -> CheckOutcome:
        passed = not self.failures
        return CheckOutcome(
            name=name, passed=passed, failures=self.failures, sample_rows=self.sample_rows,
            description="all expectations met" if passed else "; ".join(self.fragments),
        )


# --------------------------------------------------------------------------- API


def check_mapped(
    entity: str,
    df: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    company_ids: set[str] | None = None,
    category_ids: set[str] | None = None,
    distributions: pd.DataFrame | None = None,
) -> CheckOutcome:
    """Validate a mapped frame (the `ENTITY_LOADS[entity]` columns plus `tenant_id`), or the
    chunks of a set too large for one frame: every expectation per chunk, and the unique ids
    and single tenant once over the keys of all chunks (so memory holds one chunk and the keys).

    `company_ids` / `category_ids`, when given, are the ids that `company_id` /
    `category_id` must point at. `distributions` (products only) has `product_id`,
    `category_id`, `pct`; pct must sum to 100 per product.
    """
    if entity not in ENTITY_LOADS:
        raise ValueError(f"unknown entity {entity!r}; expected one of {sorted(ENTITY_LOADS)}")
    name = f"{entity}_mapped_valid"
    report = _Report()
    if isinstance(df, pd.DataFrame):
        frame = df.reset_index(drop=True)
        if frame.empty and (distributions is None or distributions.empty):
            # Every expectation holds on no rows (a delta that changed nothing): no validation to
            # run, which costs a tenth of a second even then.
            return CheckOutcome(name=name, passed=True, description="no rows to check")
        _check_frame(entity, frame, company_ids, category_ids, report, keys=True)
    else:
        keys: dict[str, list[str]] = {}
        for chunk in df:
            frame = _check_frame(entity, chunk.reset_index(drop=True), company_ids, category_ids, report, keys=False)
            for column in KEY_COLUMNS:
                if column in frame.columns:
                    # As one JSON text per chunk, read back at the end: keeping the values would keep
                    # the allocator's pages of every chunk's rows (two strings of thirteen per row
                    # pinned 390 MB for a million rows).
                    keys.setdefault(column, []).append(json.dumps(frame[column].tolist()))
        if keys:
            whole = pd.DataFrame({column: [value for part in parts for value in json.loads(part)]
                                  for column, parts in keys.items()})
            del keys
            checks = _key_checks(whole)
            report.add_results(checks, _validate(whole, [c.expectation for c in checks]), whole, list(whole.columns))
    if distributions is not None:
        _check_distributions(distributions, report)
    return report.outcome(name)


def _check_frame(entity: str, frame: pd.DataFrame, company_ids: set[str] | None, category_ids: set[str] | None,
                 report: _Report, *, keys: bool) -> pd.DataFrame:
    """Validate one frame into `report`; the frame as validated (with its helper columns)."""
    if frame.empty:
        # Nothing to check, but a zero-row frame without columns must not read as broken.
        missing = [c for c in ("tenant_id",) + ENTITY_LOADS[entity].columns if c not in frame.columns]
        if missing:
            frame = frame.assign(**{c: pd.Series([], dtype=object) for c in missing})
    row_columns = [str(c) for c in frame.columns]
    checks, frame = _mapped_checks(entity, frame, company_ids, category_ids, keys=keys)
    report.add_results(checks, _validate(frame, [c.expectation for c in checks]), frame, row_columns)
    return frame


def _check_distributions(distributions: pd.DataFrame, report: _Report) -> None:
    import great_expectations as gx

    dist = distributions.reset_index(drop=True)
    if dist.empty and not {"product_id", "pct"} <= set(dist.columns):
        dist = pd.DataFrame({"product_id": pd.Series([], dtype=object), "pct": pd.Series([], dtype=float)})
    missing = [c for c in ("product_id", "pct") if c not in dist.columns]
    if missing:
        for column in missing:
            report.failures.append({"expectation": "expect_column_to_exist", "column": column,
                                    "unexpected_count": None, "sample": [], "frame": "product_distributions"})
            report.fragments.append(f"product_distributions column {column} missing")
        return
    totals = (
        pd.to_numeric(dist["pct"], errors="coerce").groupby(dist["product_id"], sort=True, dropna=False)
        .sum(min_count=1).rename("pct").reset_index()
    )
    expectation = gx.expectations.ExpectColumnValuesToBeBetween(
        column="pct", min_value=100 - DISTRIBUTION_TOLERANCE, max_value=100 + DISTRIBUTION_TOLERANCE,
    )
    check = _Check(expectation, "pct", "product_distributions pct per product not 100", unit="product")
    # A product whose pct is all null sums to NaN; GE skips nulls, so count those as failing too.
    null_totals = totals["pct"].isna()
    (result,) = _validate(totals, [expectation])

    def distribution_rows(positions: list[int]) -> list[dict]:
        products = totals["product_id"].iloc[positions]
        rows = dist[dist["product_id"].isin(products)].head(SAMPLE_SIZE)
        return _rows(rows.reset_index(drop=True), range(len(rows)), [str(c) for c in dist.columns])

    if result.success and not null_totals.any():
        return
    if not result.success:
        report.add_failure(check, result, totals, ["product_id", "pct"], distribution_rows)
        report.failures[-1]["frame"] = "product_distributions"
    if null_totals.any():
        positions = [int(p) for p in null_totals.to_numpy().nonzero()[0]]
        report.failures.append({
            "expectation": "expect_column_values_to_not_be_null", "column": "pct",
            "unexpected_count": len(positions), "sample": _distinct(totals["product_id"].iloc[positions]),
            "frame": "product_distributions",
        })
        report.fragments.append(f"product_distributions pct null ({_plural(len(positions), 'product')})")
        report.add_rows(distribution_rows(positions[:SAMPLE_SIZE]))


def _percent(share: float) -> str:
    text = f"{share * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def check_volume(entity: str, *, current_active: int, would_delete: int,
                 max_share: float = DEFAULT_MAX_SOFT_DELETE_SHARE, by_mapping: int = 0,
                 accepted: int = 0) -> CheckOutcome:
    """Refuse a load that would soft-delete more than `max_share` of the active rows.

    `would_delete` rows would go in all: `by_mapping` of them because the mapping no longer
    loads them (ignored or pending), the others because their PSA record vanished. Up to
    `accepted` of the by-mapping ones (what the operator accepted when storing the mapping
    version in force with --force) are not counted against the share; vanished ones always are.
    With no active rows yet (first load) there is nothing to protect and it passes.
    """
    name = f"{entity}_soft_delete_volume"
    if current_active <= 0:
        return CheckOutcome(name, True, [], [], f"no active {entity} yet; would soft-delete {would_delete}")
    vanished = would_delete - by_mapping
    forgiven = min(accepted, by_mapping)
    counted = would_delete - forgiven
    share = counted / current_active
    summary = f"would soft-delete {would_delete} of {current_active} {entity}"
    if by_mapping:
        summary += f": {vanished} vanished, {by_mapping} by mapping"
    if forgiven:
        summary += f" ({forgiven} accepted with the mapping version); {counted} counted"
    if counted > max_share * current_active:
        failure = {"expectation": "soft_delete_share_at_most", "column": None,
                   "unexpected_count": counted, "sample": [], "max_share": max_share,
                   "current_active": current_active, "vanished": vanished, "by_mapping": by_mapping,
                   "accepted_by_mapping": forgiven}
        return CheckOutcome(name, False, [failure], [], f"{summary} ({_percent(share)} > {_percent(max_share)})")
    return CheckOutcome(name, True, [], [], f"{summary} ({_percent(share)} <= {_percent(max_share)})")
