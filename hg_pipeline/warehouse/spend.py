"""Spend derived from the staged spend lines: what each client pays, per category and month.

`derive_spend` reads, for one tenant, the staged lines (entity "spend", whatever the source) and
what the last map and load decided: the loaded companies and products (a product's
`category_id`), the product distributions and the mapping decisions. No PSA call: a remap
re-derives spend from staging.

- a line whose company and product (or, for an import line without a product, category path)
  are known lands in `spend`; a distributed product's line is split by its percentages,
  largest remainder on the cents, so the parts sum exactly to the line (`split_amount`);
- every other line is kept apart in `spend_unmapped` with its outcome and reason: the
  product's decision (pending, ignored, and why), a company that is not loaded, a product or
  category the tenant does not have.

`replace_spend` writes both sets for the tenant in one transaction (COPY on PostgreSQL,
executemany on SQLite): spend is derived, so the tenant's rows are replaced.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from sqlalchemy import Engine, func, select

from hg_pipeline.mapping.packed import Packed
from hg_pipeline.warehouse.bulk import copy_rows, is_postgres, plain_rows, qualified
from hg_pipeline.warehouse.map_marks import MapMark, staged_through, store_mark, upstream_key
from hg_pipeline.warehouse.staging import streamed_records
from hg_pipeline.warehouse.tables import (
    categories,
    companies,
    mapping_decisions,
    product_distributions,
    products,
    spend,
    spend_unmapped,
)

SPEND_COLUMNS = ("tenant_id", "company_id", "category_id", "product_id", "month", "amount", "currency",
                 "line_psa_id")
APART_COLUMNS = ("tenant_id", "line_psa_id", "company_psa_id", "company_id", "product_psa_id", "category", "month",
                 "amount", "currency", "outcome", "reason")


@dataclass
class DerivedSpend:
    """Rows for `spend` and `spend_unmapped` (tuples in SPEND_COLUMNS / APART_COLUMNS order, no tenant)."""

    rows: Packed = field(default_factory=Packed)  # pickled in blocks, as a map stage's rows
    apart: Packed = field(default_factory=Packed)
    lines: int = 0  # staged lines read
    split_lines: int = 0  # lines of a distributed product, split over its categories
    unchanged: bool = False  # nothing derived: the spend loaded last is still right
    mark: MapMark | None = None  # what it was derived from (stored by `replace_spend`)
    released: bool = False  # emptied by the spend map stage once Dagster stored it (orchestration/handoff.py)

    def apart_by_outcome(self) -> dict[str, int]:
        return dict(Counter(row[8] for row in self.apart))


def split_amount(amount: Decimal, shares: list[tuple[str, float]]) -> list[tuple[str, Decimal]]:
    """`amount` (whole cents) split by the shares' percentages, largest remainder on the cents:
    each part is its exact share rounded down to a cent, and the cents left over go one each to
    the parts with the largest remainders (the first share on ties). The parts sum to `amount`."""
    cents = int((amount * 100).to_integral_value())
    sign, cents = (-1 if cents < 0 else 1), abs(cents)
    weights = [Fraction(Decimal(str(pct))) for _, pct in shares]
    total = sum(weights)
    exact = [Fraction(cents) * weight / total for weight in weights]
    parts = [int(value) for value in exact]  # floor: every value is >= 0
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[: cents - sum(parts)]:
        parts[i] += 1
    return [(key, Decimal(sign * part).scaleb(-2)) for (key, _), part in zip(shares, parts)]


def derive_spend(engine: Engine, tenant_id: str, *, unless: MapMark | None = None) -> DerivedSpend:
    """The tenant's spend from its staged lines and what is loaded; `unless` the mark of the last
    spend load says that nothing it reads has changed since (the nightly): then `unchanged`,
    and nothing is derived."""
    through = staged_through(engine, tenant_id, "spend")
    with engine.connect() as conn:
        company_ids = dict(plain_rows(conn, select(companies.c.psa_id, companies.c.id).where(
            companies.c.tenant_id == tenant_id, companies.c.deleted_at.is_(None), companies.c.psa_id.is_not(None))))
        product_rows = {psa_id: (hg_id, category) for psa_id, hg_id, category in plain_rows(conn, select(
            products.c.psa_id, products.c.id, products.c.category_id).where(
            products.c.tenant_id == tenant_id, products.c.deleted_at.is_(None), products.c.psa_id.is_not(None)))}
        shares: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for product_id, category_id, pct in plain_rows(conn, select(
                product_distributions.c.product_id, product_distributions.c.category_id, product_distributions.c.pct)
                .where(product_distributions.c.tenant_id == tenant_id)
                .order_by(product_distributions.c.product_id, product_distributions.c.pct.desc(),
                          product_distributions.c.category_id)):  # a stable order
            shares[product_id].append((category_id, pct))
        t = mapping_decisions
        not_mapped = plain_rows(conn, select(t.c.entity, t.c.psa_id, t.c.outcome, t.c.reason).where(
            t.c.tenant_id == tenant_id, (t.c.entity == "companies") | (t.c.entity == "products"),
            t.c.outcome != "mapped"))  # plain_rows: no expanding IN
        decisions = {(entity, psa_id): (outcome, reason) for entity, psa_id, outcome, reason in not_mapped}
        paths = dict(plain_rows(conn, select(categories.c.path, categories.c.id).where(
            categories.c.tenant_id.is_(None) | (categories.c.tenant_id == tenant_id))))
    mark = MapMark(None, through, upstream_key((
        *(("company", *item) for item in company_ids.items()),
        *(("product", psa_id, *row) for psa_id, row in product_rows.items()),
        *(("share", product_id, *share) for product_id, split in shares.items() for share in split),
        *(("decision", *key, *value) for key, value in decisions.items()),
        *(("category", *item) for item in paths.items()))))
    if unless is not None and unless == mark:
        return DerivedSpend(unchanged=True, mark=mark)
    out = DerivedSpend(mark=mark)
    for staged in streamed_records(engine, tenant_id, "spend"):  # a batch in memory, not every line
        out.lines += 1
        line = staged.record
        company_psa_id, product_psa_id, category = line.get("company_psa_id"), line.get("product_psa_id"), \
            line.get("category")
        month, currency, line_id = line["month"], line["currency"], staged.psa_id
        company_id = company_ids.get(company_psa_id)

        def apart(outcome: str, reason: str, amount) -> None:
            out.apart.append((line_id, company_psa_id, company_id, product_psa_id, category, month, amount, currency,
                              outcome, reason))

        try:
            amount = Decimal(str(line["amount"])).quantize(Decimal("0.01"))
        except (InvalidOperation, KeyError):  # sources check amounts before staging; kept all the same
            apart("unreadable", f"amount {line.get('amount')!r} is not a number", Decimal("0.00"))
            continue
        if company_id is None:
            outcome, reason = decisions.get(("companies", company_psa_id), ("unknown_company", ""))
            apart("company_" + outcome if outcome in ("pending", "ignored") else outcome,
                  f"company {company_psa_id} is not loaded" + (f": {reason}" if reason else
                                                               " (the PSA has no such company)"), amount)
            continue
        if product_psa_id:
            product = product_rows.get(product_psa_id)
            if product is None:
                outcome, reason = decisions.get(("products", product_psa_id), ("unknown_product", ""))
                apart(outcome, f"product {product_psa_id}: {reason}" if reason else
                      f"product {product_psa_id} is not in the catalog", amount)
                continue
            product_id, category_id = product
            split = shares.get(product_id)
            if split:
                out.split_lines += 1
                # the product's own category (its largest share, first in the document on ties) first:
                # it gets the odd cent when the remainders tie
                split = sorted(split, key=lambda share: share[0] != category_id)
                for part_category, part in split_amount(amount, split):
                    out.rows.append((company_id, part_category, product_id, month, part, currency, line_id))
            elif category_id:
                out.rows.append((company_id, category_id, product_id, month, amount, currency, line_id))
            else:
                apart("uncategorized", f"product {product_psa_id} has no category", amount)
            continue
        category_id = paths.get(category) if category else None
        if category_id is None:
            apart("unknown_category", f"category {category!r} is not in the tenant's tree" if category else
                  "the line names neither a product nor a category", amount)
            continue
        out.rows.append((company_id, category_id, None, month, amount, currency, line_id))
    return out


def replace_spend(engine: Engine, tenant_id: str, derived: DerivedSpend) -> None:
    """The tenant's spend and spend_unmapped rows become `derived`, in one transaction (nothing
    to do when it is `unchanged`)."""
    if derived.unchanged:
        return
    with engine.begin() as conn:
        if derived.mark is not None:
            store_mark(conn, tenant_id, "spend", derived.mark)
        conn.execute(spend.delete().where(spend.c.tenant_id == tenant_id))
        conn.execute(spend_unmapped.delete().where(spend_unmapped.c.tenant_id == tenant_id))
        plain = (lambda v: v) if is_postgres(conn) else _sqlite_amount
        copy_rows(conn, qualified(conn, spend), SPEND_COLUMNS,
                  ((tenant_id, *row[:4], plain(row[4]), *row[5:]) for row in derived.rows))
        copy_rows(conn, qualified(conn, spend_unmapped), APART_COLUMNS,
                  ((tenant_id, *row[:6], plain(row[6]), *row[7:]) for row in derived.apart))


def _sqlite_amount(amount: Decimal) -> str:
    return str(amount)  # sqlite3 takes no Decimal; NUMERIC affinity stores the text as a number


def last_month_by_category(engine: Engine, tenant_id: str) -> tuple[str | None, list[tuple[str, str, Decimal]]]:
    """The tenant's latest month in `spend` and its spend per (category path, currency), largest first."""
    with engine.connect() as conn:
        month = conn.scalar(select(spend.c.month).where(spend.c.tenant_id == tenant_id)
                            .order_by(spend.c.month.desc()).limit(1))
        if month is None:
            return None, []
        rows = conn.execute(select(categories.c.path, spend.c.currency, spend.c.amount)
                            .select_from(spend.outerjoin(categories, categories.c.id == spend.c.category_id))
                            .where(spend.c.tenant_id == tenant_id, spend.c.month == month)).all()
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for path, currency, amount in rows:
        totals[(path or "(unknown category)", currency)] += Decimal(str(amount))
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return month, [(path, currency, amount.quantize(Decimal("0.01"))) for (path, currency), amount in ordered]


def spend_counts(engine: Engine, tenant_id: str) -> tuple[int, int, int]:
    """The tenant's rows in `spend`, the lines they come from, and its rows in `spend_unmapped`."""
    with engine.connect() as conn:
        rows, lines = conn.execute(select(func.count(), func.count(spend.c.line_psa_id.distinct())).where(
            spend.c.tenant_id == tenant_id)).one()
        apart = conn.scalar(select(func.count()).select_from(spend_unmapped).where(
            spend_unmapped.c.tenant_id == tenant_id))
    return rows, lines, apart
