"""`hg-pipeline mapping suggest` and `hg-pipeline mapping evaluate`.

cli.py calls `add_commands` from its parser; the handlers raise cli.InputError for bad input
(one line, exit status 2) like every other command.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

DEFAULT_THRESHOLD = None  # evaluate: the document default (SmartMapping.min_confidence)


def add_commands(mapping, command) -> None:
    """Adds `suggest` and `evaluate` to the `mapping` sub-parsers with cli.py's `command` helper."""
    p = command(mapping, "suggest", cmd_mapping_suggest,
                "smart mapping: a category path with its confidence for each unmapped product")
    p.add_argument("tenant")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--all", action="store_true", help="every staged product, not only the unmapped ones")
    p.add_argument("--accept-above", type=_confidence, metavar="C",
                   help="store the proposals with confidence >= C for unmapped products as product records "
                        "in a new mapping version")
    p = command(mapping, "evaluate", cmd_mapping_evaluate,
                "cross-validated accuracy, precision and coverage of smart mapping on the labelled set")
    p.add_argument("--threshold", type=_confidence, metavar="C",
                   help="the confidence to report precision and coverage at (default: the default min_confidence)")
    p.add_argument("--no-timing", action="store_true", help="skip timing suggestions for the large dataset")


def _confidence(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1")
    return value


# --- suggest --------------------------------------------------------------------------------


def cmd_mapping_suggest(args) -> int | None:
    from hg_pipeline.cli import InputError, _engine, _store_mapping_checked
    from hg_pipeline.mapping.categories import CategoryTree, global_category_paths
    from hg_pipeline.mapping.document import MappingDocument, parse_document
    from hg_pipeline.mapping.engine import PENDING, MappingContext, map_products
    from hg_pipeline.mapping.smart.tenant import tenant_model
    from hg_pipeline.orchestration.mapping_stage import mapping_targets
    from hg_pipeline.warehouse.mappings import current_mapping
    from hg_pipeline.warehouse.staging import staged_records
    from hg_pipeline.warehouse.tenants import get_tenant

    engine = _engine(args)
    tenant = args.tenant
    get_tenant(engine, tenant)
    products = [s.record for s in staged_records(engine, tenant, "products")]
    if not products:
        raise InputError(f"tenant {tenant}: no products staged yet: run `hg-pipeline sync {tenant} --initial` first")
    stored = current_mapping(engine, tenant)
    document = parse_document(stored.document) if stored else MappingDocument()
    _, paths = mapping_targets(engine, tenant)
    known = set(global_category_paths())
    tree = CategoryTree(custom_paths=sorted(paths - known), tenant_id=tenant)

    # what the document leaves pending without smart mapping
    plain = replace(document, products=replace(document.products, smart_mapping=replace(
        document.products.smart_mapping, enabled=False)), source_text=None)
    categories = [s.record for s in staged_records(engine, tenant, "product_categories")]
    decisions = map_products(products, plain, MappingContext(tenant_id=tenant, category_tree=tree), categories)
    pending = {d.psa_id for d in decisions.decisions if d.outcome == PENDING}
    chosen = products if args.all else [p for p in products if str(p["psa_id"]) in pending]

    model = tenant_model(document, products, tree)
    proposals = [(record, s) for record, s in zip(chosen, model.suggest_many(chosen))]
    if args.format == "json":
        print(json.dumps([{
            "psa_id": str(record["psa_id"]), "name": record.get("name"), "suggestion": s.path,
            "confidence": round(s.confidence, 4),
            "alternatives": [{"path": path, "confidence": round(c, 4)} for path, c in s.alternatives],
        } for record, s in proposals], indent=2, ensure_ascii=False))
    else:
        threshold = document.products.smart_mapping.min_confidence
        for record, s in proposals:
            others = ", ".join(f"{path} {c:.2f}" for path, c in s.alternatives)
            print(f"{record['psa_id']}\t{s.confidence:.2f}\t{s.path}\t{record.get('name') or '-'}\t(next: {others})")
        above = sum(1 for _, s in proposals if s.confidence >= threshold)
        scope = "products" if args.all else "unmapped products"
        print(f"tenant {tenant}: {len(proposals)} {scope}, {above} proposals at or above min_confidence "
              f"{threshold:g}", file=sys.stderr if args.accept_above is not None else sys.stdout)

    if args.accept_above is None:
        return None
    accepted = {str(record["psa_id"]): s.path for record, s in proposals
                if s.confidence >= args.accept_above and str(record["psa_id"]) in pending}
    if not accepted:
        raise InputError(f"tenant {tenant}: no proposal for an unmapped product has confidence >= "
                         f"{args.accept_above:g}; nothing stored")
    from hg_pipeline.mapping.document import Rule

    records = {**document.products.records, **{psa_id: Rule("map", to=path) for psa_id, path in accepted.items()}}
    updated = replace(document, products=replace(document.products, records=records), source_text=None)
    comment = f"smart mapping: {len(accepted)} proposals with confidence >= {args.accept_above:g} accepted"
    out = sys.stderr if args.format == "json" else sys.stdout
    saved, sys.stdout = sys.stdout, out  # keep json output parseable: the store message goes to stderr
    try:
        return _store_mapping_checked(engine, tenant, updated.to_yaml(), f"tenant {tenant} smart mapping",
                                      force=False, comment=comment)
    finally:
        sys.stdout = saved


# --- evaluate -------------------------------------------------------------------------------


def cmd_mapping_evaluate(args) -> None:
    from hg_pipeline.mapping.document import SmartMapping
    from hg_pipeline.mapping.smart.evaluate import evaluate

    threshold = args.threshold if args.threshold is not None else SmartMapping().min_confidence
    timing = None if args.no_timing else _large_dataset_products()
    result = evaluate(threshold, timing_records=timing)
    for line in format_evaluation(result):
        print(line)


def _large_dataset_products() -> list[dict]:
    """The 20,000 catalog items of the simulator's large dataset, normalized as a sync would."""
    from hg_pipeline.connectors.connectwise import _product
    from hg_pipeline.simulators.datasets import generate

    return [_product(item) for item in generate("large").catalog]


def format_evaluation(result) -> list[str]:
    lines = [
        f"labelled set: {result.rows} products, {result.families} product families, "
        f"{len(result.per_path)} category paths; {result.folds}-fold cross-validation (every figure on held-out rows)",
        f"top-1 accuracy: {result.top1:.1%}   top-3 accuracy: {result.top3:.1%}   (names never seen)",
        f"top-1 accuracy on product families never seen: {result.family_top1:.1%}",
        f"at min_confidence {result.threshold:g}: precision {result.precision:.1%}, coverage {result.coverage:.1%}",
        "threshold  precision  coverage",
        *(f"  {t:>7.2f}  {p:>9.1%}  {c:>8.1%}" for t, p, c in result.thresholds),
        "per category path (held-out rows, right, most frequent wrong suggestions):",
    ]
    for path, (n, right, wrong) in result.per_path.items():
        confused = ", ".join(f"{w} x{k}" for w, k in wrong) or "-"
        lines.append(f"  {right:>3}/{n:<3} {right / n:6.1%}  {path}  <- confused with: {confused}")
    if result.suggest_seconds is not None:
        lines.append(f"time to suggest for {result.suggest_count:,} products: {result.suggest_seconds:.2f} s "
                     f"({result.suggest_count / result.suggest_seconds:,.0f} products/s, one CPU)")
    return lines
