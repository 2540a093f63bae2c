"""A starter mapping document (product.md section 3) that names everything the PSA has.

`render_template(choices, current)` is pure: from the PSA's company types, contact types,
product categories and subcategories with their record counts (`worklist.psa_choices`) and the
mapping in force (or None), it writes a YAML document that `hg-pipeline mapping import`
accepts as is. Every choice gets a line with its record count as a comment:

- a rule of the mapping in force is kept as it is (rules for names the PSA no longer has too);
- a company type is guessed from its name (customer/client -> client, prospect -> prospect,
  vendor/supplier -> supplier, manufacturer -> manufacturer), else `ignore`, marked "decide";
- contact types and product categories are imported.
The other settings (auto_import_new, enabled, mode, records, distributions, smart mapping)
are the current document's, or the defaults: contacts and members enabled with
auto_import_new.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import yaml

from hg_pipeline.entities import HG_COMPANY_TYPES
from hg_pipeline.mapping.categories import is_valid_path
from hg_pipeline.mapping.document import MappingDocument, Rule
from hg_pipeline.mapping.engine import NO_TYPE
from hg_pipeline.mapping.worklist import COMPANY_TYPES, CONTACT_TYPES, PRODUCT_CATEGORIES, Choice

# (HighGround company type, words in a PSA type name that suggest it), first match wins
COMPANY_TYPE_GUESSES = (
    ("client", ("customer", "client")),
    ("prospect", ("prospect",)),
    ("supplier", ("vendor", "supplier")),
    ("manufacturer", ("manufacturer",)),
)
MIN_COMMENT_COLUMN, MAX_COMMENT_COLUMN = 38, 60
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 &()+._/'-]*")  # no ",", "#", ":", brackets: safe in flow style too
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


def guess_company_type(name: str) -> str | None:
    """The HighGround type a PSA company type's name suggests, or None."""
    words = set(re.findall(r"[a-z]+", name.casefold()))
    for target, hints in COMPANY_TYPE_GUESSES:
        if any(hint in words or f"{hint}s" in words for hint in hints):
            return target
    return None


def render_template(choices: Sequence[Choice], current: MappingDocument | None = None, *,
                    tenant_id: str = "TENANT") -> str:
    doc = current or MappingDocument()
    by_kind = {kind: [c for c in choices if c.kind == kind] for kind in (COMPANY_TYPES, CONTACT_TYPES,
                                                                         PRODUCT_CATEGORIES)}
    c, k, p, m, a = doc.companies, doc.contacts, doc.products, doc.members, doc.assets
    lines = [
        f"# Starter mapping for tenant {tenant_id}: every company type, contact type, product category and",
        "# subcategory of the PSA, with the records behind it. Check the lines marked \"decide\", then:",
        f"#   hg-pipeline mapping import {tenant_id} FILE",
        "companies:",
        _line("  auto_import_new", _bool(c.auto_import_new), "new companies of imported types are created"),
        *_block("  types", "PSA company type -> " + " | ".join((*HG_COMPANY_TYPES, "ignore")),
                _type_lines(by_kind[COMPANY_TYPES], c.types, _company_guess, "companies")),
        *_records("  records", c.records),
        "contacts:",
        f"  enabled: {_bool(k.enabled)}",
        f"  auto_import_new: {_bool(k.auto_import_new)}",
        *_block("  types", "PSA contact type -> import | ignore",
                _type_lines(by_kind[CONTACT_TYPES], k.types, lambda _: ("import", None), "contacts")),
        *_records("  records", k.records),
        "products:",
        _line("  mode", p.mode, "or by_product"),
        _line("  auto_import_new_categories", _bool(p.auto_import_new_categories),
              "true: unmapped PSA categories become custom categories"),
        *_block("  categories", 'PSA "Category" or "Category/Subcategory" -> import | ignore | map',
                _category_lines(by_kind[PRODUCT_CATEGORIES], p.categories)),
        *_records("  records", p.records),
        *_distributions(p.distributions),
        f"  smart_mapping: {{enabled: {_bool(p.smart_mapping.enabled)}, "
        f"min_confidence: {p.smart_mapping.min_confidence:g}}}",
        "members:",
        f"  enabled: {_bool(m.enabled)}",
        f"  auto_import_new: {_bool(m.auto_import_new)}",
        *_records("  records", m.records),
        "assets:",
        f"  enabled: {_bool(a.enabled)}",
        *_records("  records", a.records),
    ]
    return _align(lines)


def _company_guess(name: str) -> tuple[str, str | None]:
    target = guess_company_type(name)
    if target is None:
        return "ignore", "decide: " + ", ".join(HG_COMPANY_TYPES) + " or ignore"
    return target, None


def _type_lines(choices: Sequence[Choice], rules: dict[str, str], guess, noun: str) -> list[str]:
    lines = []
    for choice in choices:
        kept = rules.get(choice.name)
        target, note = (kept, None) if kept is not None else guess(choice.name)
        lines.append(_line(f"    {_scalar(choice.name)}", target, _count(choice, noun, note)))
    named = {choice.name for choice in choices}
    lines += [_line(f"    {_scalar(name)}", target, "not in the PSA's list now")
              for name, target in rules.items() if name not in named]
    return lines


def _category_lines(choices: Sequence[Choice], rules: dict[str, Rule]) -> list[str]:
    lines = []
    for choice in choices:
        indent = "    "
        if not is_valid_path(choice.name):  # a "/" or stray spaces in a PSA name: no key can name it
            lines.append(f"{indent}# {json.dumps(choice.name, ensure_ascii=False)} cannot be named in a mapping"
                         f" ({_count(choice, 'products', None)})")
            continue
        rule = rules.get(choice.name, Rule("import"))
        lines.append(_line(f"{indent}{_scalar(choice.name)}", _rule(rule), _count(choice, "products", None)))
    named = {choice.name for choice in choices}
    lines += [_line(f"    {_scalar(path)}", _rule(rule), "not in the PSA's list now")
              for path, rule in rules.items() if path not in named]
    return lines


def _block(key: str, comment: str, entries: list[str]) -> list[str]:
    """`key:` with its entries below, or `key: {}` when there is none (comments are no entries)."""
    if not any(not entry.lstrip().startswith("#") for entry in entries):
        return [_line(key, "{}", comment), *entries]
    return [_line(key, "", comment), *entries]


def _count(choice: Choice, noun: str, note: str | None) -> str:
    word = noun if choice.records != 1 else {"companies": "company", "contacts": "contact",
                                              "products": "product"}[noun]
    text = f"{choice.records:,} {word}"
    if choice.name == NO_TYPE:
        text += " without a type"
    return f"{text}; {note}" if note else text


def _records(key: str, rules: dict[str, Rule]) -> list[str]:
    if not rules:
        return [f"{key}: {{}}"]
    return [f"{key}:", *(f"    {json.dumps(psa_id, ensure_ascii=False)}: {_flow_rule(rule)}"
                         for psa_id, rule in rules.items())]


def _distributions(distributions: dict) -> list[str]:
    if not distributions:
        return ["  distributions: {}"]
    lines = ["  distributions:"]
    for key, shares in distributions.items():
        items = ", ".join(f"{{to: {_scalar(share.to)}, pct: {share.pct:g}}}" for share in shares)
        lines.append(f"    {json.dumps(key, ensure_ascii=False)}: [{items}]")
    return lines


def _rule(rule: Rule) -> str:
    return rule.action if rule.action in ("ignore", "import") else _flow_rule(rule)


def _flow_rule(rule: Rule) -> str:
    parts = [f"action: {rule.action}"]
    if rule.name is not None:
        parts.append(f"name: {_scalar(rule.name)}")
    if rule.to is not None:
        parts.append(f"to: {_scalar(rule.to)}")
    return "{" + ", ".join(parts) + "}"


def _line(key: str, value: str, comment: str | None) -> str:
    """`key: value`, with `comment` after a tab that `_align` turns into the comment column."""
    text = f"{key}: {value}" if value else f"{key}:"
    return f"{text}\t# {comment}" if comment else text


def _align(lines: list[str]) -> str:
    width = max((len(line.partition("\t")[0]) for line in lines if "\t" in line), default=0)
    column = min(max(width + 2, MIN_COMMENT_COLUMN), MAX_COMMENT_COLUMN)
    out = []
    for line in lines:
        text, tab, comment = line.partition("\t")
        out.append(f"{text.ljust(column - 1)} {comment}" if tab else line)
    return "\n".join(out) + "\n"


def _scalar(text: str) -> str:
    """`text` as a YAML scalar that reads back as the same string: plain when it can be."""
    if _PLAIN.fullmatch(text) and text == text.strip() and _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG:
        return text
    return json.dumps(text, ensure_ascii=False)


def _bool(value: bool) -> str:
    return "true" if value else "false"
