"""The mapping document (product.md section 3): schema, validation with line numbers, YAML.

`parse_document` reads the YAML as a node tree (`yaml.compose`), so every error names the
line of the offending key or value. It reports every problem of the document at once
(`MappingError.problems`, sorted by line), except a YAML syntax error, after which the
parser cannot go on. A rule, a distribution share and a type entry are read as a unit: their
first problem is reported, the rest of the document is still read. The result is a `MappingDocument` of frozen
dataclasses; a section that is absent gets its defaults. A document parsed from text
keeps that text (`source_text`), so `mapping export` prints exactly what was imported.

Limits come first, before the YAML composer (which recurses once per level) sees the text: a
document over `MAX_DOCUMENT_BYTES`, nested deeper than `MAX_DEPTH` or holding more than
`MAX_NODES` values once its aliases are expanded is refused with one problem. The depth and
node counts come from PyYAML's event stream, which keeps its own stack and cannot overflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hg_pipeline.entities import HG_COMPANY_TYPES
from hg_pipeline.mapping.categories import is_valid_path

SECTIONS = ("companies", "contacts", "products", "members", "assets")
ACTIONS = ("ignore", "import", "import_as", "map")
COMPANY_TYPE_TARGETS = (*HG_COMPANY_TYPES, "ignore")
CONTACT_TYPE_TARGETS = ("import", "ignore")
PRODUCT_MODES = ("by_category", "by_product")
PCT_TOLERANCE = 1e-6
MAX_DOCUMENT_BYTES = 1024 * 1024  # "1 MB"; a mapping of 20,000 product rules takes about a megabyte
MAX_DEPTH = 20  # collections inside collections; the contract's format needs 5
MAX_NODES = 1_000_000  # values once aliases are expanded ("billion laughs")

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL = _TAG + "str", _TAG + "int", _TAG + "float", _TAG + "bool"


class Problem(NamedTuple):
    """One problem of a document; `line` is 1-based (None when unknown)."""

    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line is not None else self.reason


class MappingError(ValueError):
    """A mapping document that cannot be used.

    `problems` lists every problem found, sorted by line; `line`, `reason` and `str()` are
    the first one's, so a caller that shows one line shows the first problem.
    """

    def __init__(self, line: int | None, reason: str, problems: Sequence[Problem] = ()) -> None:
        self.line = line
        self.reason = reason
        self.problems: tuple[Problem, ...] = tuple(problems) or (Problem(line, reason),)
        super().__init__(str(Problem(line, reason)))

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> MappingError:
        ordered = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        return cls(ordered[0].line, ordered[0].reason, ordered)

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.line, self.reason, self.problems))


# --- the document -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One action: ignore | import | import_as (with `name`) | map (with `to`)."""

    action: str
    name: str | None = None
    to: str | None = None


@dataclass(frozen=True)
class Share:
    """One share of a product distribution: category path `to` gets `pct` percent."""

    to: str
    pct: float


@dataclass(frozen=True)
class SmartMapping:
    enabled: bool = False
    min_confidence: float = 0.96  # calibrated: at least about 98% of held-out proposals at or above it are right


@dataclass(frozen=True)
class CompaniesSection:
    auto_import_new: bool = True
    types: dict[str, str] = field(default_factory=dict)  # PSA type -> client|...|ignore
    records: dict[str, Rule] = field(default_factory=dict)  # PSA id -> rule


@dataclass(frozen=True)
class ContactsSection:
    enabled: bool = True
    auto_import_new: bool = True
    types: dict[str, str] = field(default_factory=dict)  # PSA type -> import|ignore
    records: dict[str, Rule] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductsSection:
    auto_import_new_categories: bool = False
    mode: str = "by_category"
    categories: dict[str, Rule] = field(default_factory=dict)  # PSA "Cat" or "Cat/Sub" -> rule
    records: dict[str, Rule] = field(default_factory=dict)  # PSA id or SKU -> rule
    distributions: dict[str, tuple[Share, ...]] = field(default_factory=dict)  # PSA id or SKU
    smart_mapping: SmartMapping = field(default_factory=SmartMapping)


@dataclass(frozen=True)
class MembersSection:
    enabled: bool = True
    auto_import_new: bool = True
    records: dict[str, Rule] = field(default_factory=dict)


@dataclass(frozen=True)
class AssetsSection:
    enabled: bool = True
    records: dict[str, Rule] = field(default_factory=dict)


@dataclass(frozen=True)
class MappingDocument:
    """A validated mapping document. Treat the dicts inside as read-only."""

    companies: CompaniesSection = field(default_factory=CompaniesSection)
    contacts: ContactsSection = field(default_factory=ContactsSection)
    products: ProductsSection = field(default_factory=ProductsSection)
    members: MembersSection = field(default_factory=MembersSection)
    assets: AssetsSection = field(default_factory=AssetsSection)
    source_text: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Every setting, explicitly (defaults included), as plain data."""
        c, k, p, m, a = self.companies, self.contacts, self.products, self.members, self.assets
        return {
            "companies": {
                "auto_import_new": c.auto_import_new,
                "types": dict(c.types),
                "records": _rules_dict(c.records),
            },
            "contacts": {
                "enabled": k.enabled,
                "auto_import_new": k.auto_import_new,
                "types": dict(k.types),
                "records": _rules_dict(k.records),
            },
            "products": {
                "auto_import_new_categories": p.auto_import_new_categories,
                "mode": p.mode,
                "categories": _rules_dict(p.categories),
                "records": _rules_dict(p.records),
                "distributions": {
                    key: [_Flow(to=s.to, pct=s.pct) for s in shares]
                    for key, shares in p.distributions.items()
                },
                "smart_mapping": _Flow(
                    enabled=p.smart_mapping.enabled, min_confidence=p.smart_mapping.min_confidence
                ),
            },
            "members": {
                "enabled": m.enabled,
                "auto_import_new": m.auto_import_new,
                "records": _rules_dict(m.records),
            },
            "assets": {"enabled": a.enabled, "records": _rules_dict(a.records)},
        }

    def to_yaml(self) -> str:
        """The text it was parsed from, unchanged; else a canonical YAML that parses back equal."""
        if self.source_text is not None:
            return self.source_text
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Flow(dict):
    """A mapping written on one line: {action: map, to: ...}."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(
    _Flow, lambda dumper, data: dumper.represent_mapping(_TAG + "map", data, flow_style=True)
)


def _rules_dict(rules: dict[str, Rule]) -> dict[str, _Flow]:
    out = {}
    for key, rule in rules.items():
        entry = _Flow(action=rule.action)
        if rule.name is not None:
            entry["name"] = rule.name
        if rule.to is not None:
            entry["to"] = rule.to
        out[key] = entry
    return out


# --- parsing --------------------------------------------------------------------------------


def parse_document(
    text: str,
    *,
    company_ids: set[str] | None = None,
    category_paths: set[str] | None = None,
) -> MappingDocument:
    """Validates the whole document and returns it; raises `MappingError` with every problem.

    `company_ids`: HighGround company ids of the tenant (targets of companies `map`);
    `category_paths`: global + the tenant's custom category paths (targets of product `map`
    and distributions). When a set is None, that existence check is skipped.
    """
    too_big = size_problem(len(text.encode("utf-8", "surrogatepass")))
    if too_big:
        raise MappingError(None, too_big)
    root = _compose(text)
    parser = _Parser(company_ids, category_paths)
    sections = parser.document(root)
    if parser.problems:
        raise MappingError.of(parser.problems)
    return MappingDocument(**sections, source_text=text)


def size_problem(size: int) -> str | None:
    """Why a document of `size` bytes is refused, or None."""
    if size <= MAX_DOCUMENT_BYTES:
        return None
    return f"{size:,} bytes is over the {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB limit for a mapping document"


def _check_shape(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH and more than MAX_NODES values (aliases expanded),
    reading PyYAML's events (iterative) before the composer (recursive) runs."""
    nodes = 0
    sizes: dict[str, int] = {}  # anchor -> values under it, its own aliases expanded
    open_collections: list[tuple[str | None, int]] = []  # (anchor, node count at its start)
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            nodes += sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            open_collections.append((event.anchor, nodes))
            if len(open_collections) > MAX_DEPTH:
                raise MappingError(event.start_mark.line + 1,
                                   f"nested more than {MAX_DEPTH} levels deep (a mapping document needs 5)")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = open_collections.pop()
            if anchor:
                sizes[anchor] = nodes - start + 1
        if nodes > MAX_NODES:
            raise MappingError(event.start_mark.line + 1,
                               f"more than {MAX_NODES:,} values once its aliases are expanded")


def _compose(text: str) -> Node | None:
    try:
        _check_shape(text)
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        raise MappingError(mark.line + 1 if mark else None, f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        raise MappingError(line, f"YAML syntax error: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise MappingError(None, f"YAML syntax error: {exc}") from None


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _one_of(options: tuple[str, ...] | list[str]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]


def _key_repr(key: str) -> str:
    return f'"{key}"'


class _Parser:
    """Turns the node tree into sections; each method validates one part of section 3.

    A reader raises `MappingError` at the first problem of its part; the loops over keys and
    entries catch it (`collecting`), note it in `problems` and go on with the next part.
    """

    def __init__(self, company_ids: set[str] | None, category_paths: set[str] | None) -> None:
        self.company_ids = company_ids
        self.category_paths = category_paths
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Notes the problem a part raises and skips the rest of that part only."""
        try:
            yield
        except MappingError as exc:
            self.problems.extend(exc.problems)

    def report(self, node: Node, reason: str) -> None:
        self.problems.append(Problem(_line(node), reason))

    def document(self, root: Node | None) -> dict[str, Any]:
        sections: dict[str, Any] = {}
        if root is None or (isinstance(root, ScalarNode) and root.tag == _TAG + "null"):
            return sections
        with self.collecting():
            for key, key_node, value in self.items(root, "the document"):
                if key not in SECTIONS:
                    self.report(key_node, f'unknown key "{key}" at top level (expected {_one_of(SECTIONS)})')
                    continue
                with self.collecting():
                    sections[key] = getattr(self, key)(value)
        return sections

    # -- generic node readers

    def items(self, node: Node, where: str) -> list[tuple[str, ScalarNode, Node]]:
        """(key, key node, value node) of a mapping; keys are strings (plain ints accepted).

        A key that is not a string, or that appears twice, is noted and left out.
        """
        if isinstance(node, ScalarNode) and node.tag == _TAG + "null":
            return []  # "section:" with nothing under it
        if not isinstance(node, MappingNode):
            raise MappingError(_line(node), f"{where}: expected a mapping")
        seen: dict[str, int] = {}
        out = []
        for key_node, value in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (_STR, _INT):
                self.report(key_node, f"{where}: keys must be strings (quote the key)")
                continue
            key = key_node.value
            if key in seen:
                self.report(key_node, f"{where}: duplicate key {_key_repr(key)} (first on line {seen[key]})")
                continue
            seen[key] = _line(key_node)
            out.append((key, key_node, value))
        return out

    def fields(self, node: Node, where: str, allowed: tuple[str, ...], *, unit: bool = False) -> dict[str, Node]:
        """A mapping with a fixed set of keys; unknown keys are problems.

        `unit`: the mapping is read as one unit (a rule, a share): its first unknown key is
        raised, so that a misspelt key does not also report the key it was meant to be.
        """
        result = {}
        for key, key_node, value in self.items(node, where):
            if key not in allowed:
                problem = f'unknown key "{key}" in {where} (expected {_one_of(allowed)})'
                if unit:
                    raise MappingError(_line(key_node), problem)
                self.report(key_node, problem)
                continue
            result[key] = value
        return result

    def section(self, node: Node, where: str, readers: dict[str, Callable[[Node], Any]]) -> dict[str, Any]:
        """The settings of a section (or sub-section), each read on its own."""
        out: dict[str, Any] = {}
        for key, value in self.fields(node, where, tuple(readers)).items():
            with self.collecting():
                out[key] = readers[key](value)
        return out

    def boolean(self, node: Node, where: str) -> bool:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            raise MappingError(_line(node), f"{where}: expected true or false, got {_shown(node)}")
        return self._constructor.construct_yaml_bool(node)

    def number(self, node: Node, where: str) -> float:
        if isinstance(node, ScalarNode) and node.tag == _INT:
            return self._constructor.construct_yaml_int(node)
        if isinstance(node, ScalarNode) and node.tag == _FLOAT:
            value = self._constructor.construct_yaml_float(node)
            if math.isfinite(value):
                return value
        raise MappingError(_line(node), f"{where}: expected a number, got {_shown(node)}")

    def string(self, node: Node, where: str) -> str:
        """A non-empty string; plain numbers are taken as written (`to: 12345`)."""
        if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
            raise MappingError(_line(node), f"{where}: expected a string, got {_shown(node)}")
        if not node.value.strip():
            raise MappingError(_line(node), f"{where}: must not be empty")
        return node.value

    def choice(self, node: Node, where: str, options: tuple[str, ...], what: str) -> str:
        value = self.string(node, where)
        if value not in options:
            raise MappingError(_line(node), f'{where}: unknown {what} "{value}" (expected {_one_of(options)})')
        return value

    # -- rules

    def rule(self, node: Node, where: str, *, kind: str) -> Rule:
        """`{action: ..., name?, to?}`, or the short form `ignore` / `import`.

        kind: "company" | "record" (contacts, members, assets) | "category" (product
        categories) | "product" (product records).
        """
        if isinstance(node, ScalarNode) and node.tag != _TAG + "null":
            action = self.choice(node, where, ("ignore", "import"), "action")
            return Rule(action)
        spec = self.fields(node, where, ("action", "name", "to"), unit=True)
        if "action" not in spec:
            raise MappingError(_line(node), f"{where}: missing action (expected {_one_of(ACTIONS)})")
        action_node = spec["action"]
        action = self.choice(action_node, f"{where}.action", ACTIONS, "action")
        name = to = None
        if action == "import_as":
            if "name" not in spec:
                raise MappingError(_line(action_node), f"{where}: action import_as needs a name")
            name = self.string(spec["name"], f"{where}.name")
            if kind == "category" and not is_valid_path(name):
                raise MappingError(
                    _line(spec["name"]),
                    f'{where}.name: "{name}" is not a category name or "Category/Subcategory" path',
                )
        elif "name" in spec:
            raise MappingError(_line(spec["name"]), f"{where}: name is only used with action import_as")
        if action == "map":
            if "to" not in spec:
                raise MappingError(_line(action_node), f"{where}: action map needs a target (to)")
            to_node = spec["to"]
            to = self.string(to_node, f"{where}.to")
            if kind == "company" and self.company_ids is not None and to not in self.company_ids:
                raise MappingError(
                    _line(to_node), f'{where}.to: "{to}" is not a HighGround company of this tenant'
                )
            if kind in ("category", "product"):
                self.check_category(to, to_node, f"{where}.to")
        elif "to" in spec:
            raise MappingError(_line(spec["to"]), f"{where}: to is only used with action map")
        return Rule(action, name=name, to=to)

    def check_category(self, path: str, node: Node, where: str) -> None:
        if not is_valid_path(path):
            raise MappingError(_line(node), f'{where}: "{path}" is not a "Category/Subcategory" path')
        if self.category_paths is not None and path not in self.category_paths:
            raise MappingError(_line(node), f'{where}: category "{path}" is not in the category tree')

    def records(self, node: Node, where: str, *, kind: str) -> dict[str, Rule]:
        rules: dict[str, Rule] = {}
        targets: dict[str, str] = {}
        for key, key_node, value in self.items(node, where):
            with self.collecting():
                rule = self.rule(value, f"{where}[{_key_repr(key)}]", kind=kind)
                if rule.action == "map" and kind in ("company", "record"):
                    if rule.to in targets:  # two PSA records cannot become one HighGround row
                        raise MappingError(
                            _line(key_node),
                            f'{where}[{_key_repr(key)}]: "{rule.to}" is already the target of record '
                            f"{_key_repr(targets[rule.to])}",
                        )
                    targets[rule.to] = key
                rules[key] = rule
        return rules

    def types(self, node: Node, where: str, options: tuple[str, ...]) -> dict[str, str]:
        out = {}
        for key, _, value in self.items(node, where):
            with self.collecting():
                out[key] = self.choice(value, f"{where}[{_key_repr(key)}]", options, "target")
        return out

    # -- sections

    def companies(self, node: Node) -> CompaniesSection:
        return CompaniesSection(**self.section(node, "companies", {
            "auto_import_new": lambda n: self.boolean(n, "companies.auto_import_new"),
            "types": lambda n: self.types(n, "companies.types", COMPANY_TYPE_TARGETS),
            "records": lambda n: self.records(n, "companies.records", kind="company"),
        }))

    def contacts(self, node: Node) -> ContactsSection:
        return ContactsSection(**self.section(node, "contacts", {
            "enabled": lambda n: self.boolean(n, "contacts.enabled"),
            "auto_import_new": lambda n: self.boolean(n, "contacts.auto_import_new"),
            "types": lambda n: self.types(n, "contacts.types", CONTACT_TYPE_TARGETS),
            "records": lambda n: self.records(n, "contacts.records", kind="record"),
        }))

    def products(self, node: Node) -> ProductsSection:
        return ProductsSection(**self.section(node, "products", {
            "auto_import_new_categories": lambda n: self.boolean(n, "products.auto_import_new_categories"),
            "mode": lambda n: self.choice(n, "products.mode", PRODUCT_MODES, "mode"),
            "categories": self.categories,
            "records": lambda n: self.records(n, "products.records", kind="product"),
            "distributions": self.distributions,
            "smart_mapping": self.smart_mapping,
        }))

    def categories(self, node: Node) -> dict[str, Rule]:
        categories = {}
        for key, key_node, value in self.items(node, "products.categories"):
            where = f"products.categories[{_key_repr(key)}]"
            with self.collecting():
                if not is_valid_path(key):
                    raise MappingError(
                        _line(key_node), f'{where}: "{key}" is not a PSA "Category" or "Category/Subcategory"'
                    )
                categories[key] = self.rule(value, where, kind="category")
        return categories

    def distributions(self, node: Node) -> dict[str, tuple[Share, ...]]:
        out = {}
        for key, key_node, value in self.items(node, "products.distributions"):
            with self.collecting():
                out[key] = self.distribution(key_node, value, f"products.distributions[{_key_repr(key)}]")
        return out

    def distribution(self, key_node: Node, node: Node, where: str) -> tuple[Share, ...]:
        """Every share is checked; the sum only when every share could be read."""
        if not isinstance(node, SequenceNode) or not node.value:
            raise MappingError(_line(node), f"{where}: expected a list of {{to, pct}}")
        shares = []
        seen: set[str] = set()
        for index, item in enumerate(node.value):
            with self.collecting():
                shares.append(self.share(item, f"{where}[{index}]", seen))
        if len(shares) < len(node.value):
            return tuple(shares)  # its problems are noted; the sum would only repeat them
        total = sum(share.pct for share in shares)
        if abs(total - 100) > PCT_TOLERANCE:
            raise MappingError(_line(key_node), f"{where}: percentages sum to {total:g}, not 100")
        return tuple(shares)

    def share(self, item: Node, at: str, seen: set[str]) -> Share:
        spec = self.fields(item, at, ("to", "pct"), unit=True)
        for required in ("to", "pct"):
            if required not in spec:
                raise MappingError(_line(item), f"{at}: missing {required}")
        to = self.string(spec["to"], f"{at}.to")
        self.check_category(to, spec["to"], f"{at}.to")
        if to in seen:
            raise MappingError(_line(spec["to"]), f'{at}.to: category "{to}" appears twice')
        seen.add(to)
        pct = self.number(spec["pct"], f"{at}.pct")
        if pct <= 0:
            raise MappingError(_line(spec["pct"]), f"{at}.pct: must be greater than 0, got {pct:g}")
        return Share(to, pct)

    def smart_mapping(self, node: Node) -> SmartMapping:
        return SmartMapping(**self.section(node, "products.smart_mapping", {
            "enabled": lambda n: self.boolean(n, "products.smart_mapping.enabled"),
            "min_confidence": self.min_confidence,
        }))

    def min_confidence(self, node: Node) -> float:
        value = self.number(node, "products.smart_mapping.min_confidence")
        if not 0 <= value <= 1:
            raise MappingError(
                _line(node), f"products.smart_mapping.min_confidence: must be between 0 and 1, got {value:g}"
            )
        return value

    def members(self, node: Node) -> MembersSection:
        return MembersSection(**self.section(node, "members", {
            "enabled": lambda n: self.boolean(n, "members.enabled"),
            "auto_import_new": lambda n: self.boolean(n, "members.auto_import_new"),
            "records": lambda n: self.records(n, "members.records", kind="record"),
        }))

    def assets(self, node: Node) -> AssetsSection:
        return AssetsSection(**self.section(node, "assets", {
            "enabled": lambda n: self.boolean(n, "assets.enabled"),
            "records": lambda n: self.records(n, "assets.records", kind="record"),
        }))


def _shown(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return "nothing" if node.tag == _TAG + "null" else f'"{node.value}"'
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


# --- the default ----------------------------------------------------------------------------

_DEFAULT_DOCUMENT = """\
# HighGround mapping for a ConnectWise PSA (default). Edit, then: hg-pipeline mapping import TENANT FILE
companies:
  auto_import_new: true              # new companies of imported types are created automatically
  types:                             # PSA company type -> client | prospect | supplier | manufacturer | ignore
    Customer: client
    Prospect: prospect
    Vendor: supplier
    Partner: supplier
    Competitor: ignore
  records: {}                        # per PSA company id, e.g. "250": {action: map, to: "hg-company-id"}
contacts:
  enabled: true
  auto_import_new: true
  types:                             # PSA contact type -> import | ignore
    Billing: import
    End User: import
    Decision Maker: import
    Vendor Contact: ignore
  records: {}
products:
  mode: by_category                  # or by_product
  auto_import_new_categories: false  # true: unmapped PSA categories become custom categories
  categories:                        # PSA "Category" or "Category/Subcategory" -> HighGround path
    Hardware/Laptops: {action: map, to: Hardware/End User Devices}
    Hardware/Desktops: {action: map, to: Hardware/End User Devices}
    Hardware/Servers: {action: map, to: Hardware/Servers & Storage}
    Hardware/Networking: {action: map, to: Hardware/Networking Equipment}
    Hardware/Accessories: {action: map, to: Hardware/Peripherals & Accessories}
    Software/Microsoft 365: {action: map, to: Software & Licensing/Productivity Suites}
    Software/Operating Systems: {action: map, to: Software & Licensing/Operating Systems}
    Software/Line of Business: {action: map, to: Software & Licensing/Business Applications}
    Security/Endpoint: {action: map, to: Security/Endpoint Protection}
    Security/Email: {action: map, to: Security/Email Security}
    Security/Firewall: {action: map, to: Security/Firewall & Network Security}
    Backup: {action: map, to: Backup & Recovery/Backup Software}
    Cloud Services: {action: map, to: Cloud & Hosting/Infrastructure as a Service}
    Telecom: {action: map, to: Communications/VoIP & Telephony}
    Labor/Project: {action: map, to: Professional Services/Projects & Installation}
    Labor/Support: {action: map, to: Managed Services/Helpdesk & Support}
    Misc: {action: ignore}
  records: {}                        # per PSA id or SKU; wins over everything
  distributions: {}                  # per PSA id or SKU: [{to: Category/Subcategory, pct: 40}, ...]
  smart_mapping: {enabled: false, min_confidence: 0.96}
members:
  enabled: true
  auto_import_new: true
  records: {}
assets:
  enabled: true
  records: {}
"""


def default_document() -> str:
    """A sensible starting document for a ConnectWise MSP; valid against the global tree."""
    return _DEFAULT_DOCUMENT
