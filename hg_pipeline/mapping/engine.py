"""The mapping engine: normalized PSA records + a mapping document -> warehouse rows.

Pure functions, no I/O: each `map_<entity>` returns the rows to load (exactly the columns of
`ENTITY_LOADS[entity]` plus `tenant_id`) and one `Decision` per input record, saying whether
it was mapped, left pending or ignored, by which rule and why. Pending and ignored records
get no row. Everything is dict lookups, one pass per entity.

Rules shared by all entities:
- An imported record gets the id `ids.record_id(tenant, entity, psa_id)`; a `map` record
  rule gives it the target's id instead.
- A record rule (`records`, by PSA id) wins over every other rule of its section.
- Two records that would land on the same HighGround id (two `map` rules to one target, or
  a PSA id seen twice): the first one in input order keeps it, the next is pending.
- A record the document says nothing about is pending: listed by `mapping pending`, not
  loaded, not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hg_pipeline.entities import ENTITY_LOADS, HG_COMPANY_TYPES, LOADED_ENTITIES
from hg_pipeline.ids import record_id
from hg_pipeline.mapping.categories import CategoryTree, parent_path
from hg_pipeline.mapping.document import MappingDocument, ProductsSection, Rule, Share
from hg_pipeline.mapping.packed import Packed

MAPPED, PENDING, IGNORED = "mapped", "pending", "ignored"
NOT_INVITED = "not_invited"
NO_TYPE = "(no type)"
NO_CATEGORY = "(no category)"

ROW_COLUMNS = {entity: ("tenant_id", *load.columns) for entity, load in ENTITY_LOADS.items()}
"""The keys of every row a map_<entity> returns."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What happened to one PSA record, and why."""

    entity: str
    psa_id: str
    outcome: str  # "mapped" | "pending" | "ignored"
    reason: str  # human readable, names the rule
    rule: str  # record|type|category|subcategory|distribution|smart|auto_import|default|disabled|parent|unknown_parent|unmapped|new
    group: str | None = None  # the type / category path the record was grouped under

    def __reduce__(self):
        # Pickled between Dagster steps by the hundred thousand: plain arguments are 2x faster
        # than the dataclass default, which looks the fields up for every object.
        return Decision, (self.entity, self.psa_id, self.outcome, self.reason, self.rule, self.group)


@dataclass
class MappingContext:
    """What the engine needs to know besides the records and the document."""

    tenant_id: str
    # per entity: PSA ids first seen after the mapping version in force (auto_import_new applies)
    new_psa_ids: dict[str, set[str]] = field(default_factory=dict)
    # HighGround company id -> {"name", "hg_type"} already in the warehouse (targets of `map`)
    existing_companies: dict[str, dict] = field(default_factory=dict)
    # entity -> HighGround id -> {"name", ...}: map targets of contacts, members, assets
    existing_records: dict[str, dict[str, dict]] = field(default_factory=dict)
    # global tree + the tenant's existing custom categories
    category_tree: CategoryTree = field(default_factory=CategoryTree)
    # smart mapping: product record -> (category path, confidence 0..1), or None
    suggest: Callable[[dict], tuple[str, float] | None] | None = None


@dataclass
class MappingResult:
    entity: str
    # Held pickled in blocks (a million rows take ~100 MB, not a GiB): iterate, do not mutate.
    rows: Packed = field(default_factory=Packed)  # ENTITY_LOADS[entity].columns + tenant_id
    decisions: Packed = field(default_factory=Packed)  # one Decision per input record
    categories: list[dict] = field(default_factory=list)  # products: custom categories used
    distributions: list[dict] = field(default_factory=list)  # products: {tenant_id, product_id, category_id, pct}
    # A delta (the nightly): the PSA ids this result decides; every other record keeps its row
    # and decision. None: the result states the whole entity.
    scope: list[str] | None = None
    # How far the map stage read staging (warehouse/map_marks.MapMark), stored by the load.
    mark: object | None = None
    released: bool = False  # emptied by its map stage once Dagster stored it (orchestration/handoff.py)

    def counts(self) -> dict[str, int]:
        """Number of decisions per outcome (mapped, pending, ignored)."""
        counts = {MAPPED: 0, PENDING: 0, IGNORED: 0}
        for decision in self.decisions:
            counts[decision.outcome] += 1
        return counts

    def pending(self) -> list[Decision]:
        return [d for d in self.decisions if d.outcome == PENDING]


class _Collector:
    """Builds one MappingResult; refuses a second row with an id already taken."""

    def __init__(self, entity: str, tenant_id: str) -> None:
        self.entity = entity
        self.tenant_id = tenant_id
        self.result = MappingResult(entity)
        self._owner: dict[str, str] = {}  # HighGround id -> PSA id that got it
        self._texts: dict[str, str] = {}  # one string per distinct reason and group: a block pickles each once

    def _one(self, text: str | None) -> str | None:
        return text if text is None else self._texts.setdefault(text, text)

    def taken_by(self, hg_id: str) -> str | None:
        return self._owner.get(hg_id)

    def skip(self, psa_id: str, outcome: str, reason: str, rule: str, group: str | None = None) -> None:
        self.result.decisions.append(Decision(self.entity, psa_id, outcome, self._one(reason), rule, self._one(group)))

    def load(self, psa_id: str, row: dict, reason: str, rule: str, group: str | None = None) -> bool:
        """Adds a mapped row (row["id"] set); False (and pending) if the id is taken."""
        owners = self._owner
        size = len(owners)
        owner = owners.setdefault(row["id"], psa_id)
        if len(owners) == size:  # the id was taken already
            self.skip(psa_id, PENDING, f"HighGround id {row['id']} is already used by PSA record {owner}", rule, group)
            return False
        row["tenant_id"] = self.tenant_id
        self.result.rows.append(row)
        self.result.decisions.append(Decision(self.entity, psa_id, MAPPED, self._one(reason), rule, self._one(group)))
        return True


def _record_reason(key: str, rule: Rule) -> str:
    if rule.action == "import_as":
        return f'record rule {key}: import as "{rule.name}"'
    if rule.action == "map":
        return f"record rule {key}: map to {rule.to}"
    return f"record rule {key}: {rule.action}"


def _first_rule(types: Iterable[str], rules: dict[str, str]) -> tuple[str | None, str | None]:
    """The first of `types` (PSA order) that has a rule, and that rule."""
    for name in types:
        target = rules.get(name)
        if target is not None:
            return name, target
    return None, None


def _company_index(companies: MappingResult) -> dict[str, tuple[str, str | None]]:
    """PSA company id -> (outcome, HighGround id of its row or None)."""
    ids: dict[str, str] = {}
    for row in companies.rows:
        ids.setdefault(row["psa_id"], row["id"])
    index: dict[str, tuple[str, str | None]] = {}
    for decision in companies.decisions:  # a PSA id seen twice: its first decision counts
        index.setdefault(decision.psa_id, (decision.outcome, ids.get(decision.psa_id)))
    return index


def _parent_blocker(company_psa_id, index, noun: str) -> tuple[str, str, str] | str:
    """The child's company: its HighGround id, or (outcome, reason, rule) when it blocks the child.

    - no company -> ignored ("<noun> has no company");
    - company ignored -> ignored; company pending -> pending (rule "parent");
    - company not among the company decisions -> pending ("company N is unknown"), rule
      "unknown_parent": the PSA record points at nothing, the map stage quarantines it.
    """
    if company_psa_id is None or company_psa_id == "":
        return IGNORED, f"{noun} has no company", "parent"
    company_psa_id = str(company_psa_id)
    found = index.get(company_psa_id)
    if found is None:
        return PENDING, f"company {company_psa_id} is unknown", "unknown_parent"
    outcome, hg_id = found
    if outcome == IGNORED:
        return IGNORED, f"company {company_psa_id} is ignored", "parent"
    if outcome == PENDING or hg_id is None:
        return PENDING, f"company {company_psa_id} is pending", "parent"
    return hg_id


# --- companies ------------------------------------------------------------------------------


def map_companies(records: Iterable[dict], doc: MappingDocument, ctx: MappingContext) -> MappingResult:
    """Companies -> `companies` rows.

    - A company `deleted` in the PSA is ignored ("deleted in the PSA"), whatever the rules say.
    - A record rule (companies.records, by PSA id) wins over the type rule:
      ignore; import (PSA name); import_as (the given name); map (id = the target, name = the
      existing HighGround company's name, else the PSA name).
    - Type rule: the first of the company's `types` (PSA order) that has a rule decides;
      `ignore` ignores the company, a HighGround type imports it with that `hg_type`.
    - No type with a rule -> pending, grouped under its first type (or "(no type)").
      A company with no type follows the rule of the key "(no type)", when there is one.
    - companies.auto_import_new false: a company in ctx.new_psa_ids["companies"] that its type
      would import is pending (rule "new"); a record rule still applies to it.
    - hg_type: the type rule's HighGround type; for `map` without one, the existing company's
      hg_type; for import/import_as without one, None.
    - psa_name = PSA name; psa_type = the deciding PSA type (else the first type, else None).
    """
    section = doc.companies
    tenant = ctx.tenant_id
    new = ctx.new_psa_ids.get("companies") or ()
    out = _Collector("companies", tenant)
    for rec in records:
        psa_id = str(rec["psa_id"])
        types = rec.get("types") or ()
        psa_name = rec.get("name")
        deciding_type, target = _first_rule(types or (NO_TYPE,), section.types)
        psa_type = (deciding_type or types[0]) if types else None
        group = psa_type or NO_TYPE
        if rec.get("deleted"):
            out.skip(psa_id, IGNORED, "deleted in the PSA", "default", group)
            continue
        hg_type = target if target in HG_COMPANY_TYPES else None
        rule = section.records.get(psa_id)
        if rule is not None:
            if rule.action == "ignore":
                out.skip(psa_id, IGNORED, _record_reason(psa_id, rule), "record", group)
                continue
            if rule.action == "map":
                existing = ctx.existing_companies.get(rule.to) or {}
                hg_id, name = rule.to, existing.get("name") or psa_name
                hg_type = hg_type or existing.get("hg_type")
            else:
                hg_id = record_id(tenant, "companies", psa_id)
                name = rule.name if rule.action == "import_as" else psa_name
            row = {"id": hg_id, "psa_id": psa_id, "name": name, "psa_name": psa_name,
                   "hg_type": hg_type, "psa_type": psa_type}
            out.load(psa_id, row, _record_reason(psa_id, rule), "record", group)
            continue
        if deciding_type is None:
            reason = f'company type "{types[0]}" is not mapped' if types else "company has no type"
            out.skip(psa_id, PENDING, reason, "unmapped", group)
        elif target == "ignore":
            out.skip(psa_id, IGNORED, f'company type "{deciding_type}" -> ignore (companies.types)', "type", group)
        elif not section.auto_import_new and psa_id in new:
            reason = f'new company of type "{deciding_type}" waits for review (companies.auto_import_new is false)'
            out.skip(psa_id, PENDING, reason, "new", group)
        else:
            row = {"id": record_id(tenant, "companies", psa_id), "psa_id": psa_id, "name": psa_name,
                   "psa_name": psa_name, "hg_type": hg_type, "psa_type": psa_type}
            out.load(psa_id, row, f'company type "{deciding_type}" -> {target} (companies.types)', "type", group)
    return out.result


# --- contacts -------------------------------------------------------------------------------


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().partition(" ")
    return first, last.strip()


def map_contacts(
    records: Iterable[dict], doc: MappingDocument, ctx: MappingContext, companies: MappingResult
) -> MappingResult:
    """Contacts -> `contacts` rows (soft import: invite_status is always "not_invited").

    - contacts.enabled false -> every contact ignored (rule "disabled").
    - The contact's company decides first (rule "parent"): no company_psa_id -> ignored;
      company ignored -> ignored; company pending -> pending; company not among the company
      decisions -> pending ("company N is unknown"). company_id = the company's HighGround id.
    - Then the record rule (contacts.records): ignore; import; import_as (the name is split at
      its first space into first_name / last_name); map (id = the target; the names of
      ctx.existing_records["contacts"][target] when given, else the PSA's). The target's
      existence is not checked.
    - Then the type rule: the first of the contact's `types` with a rule (import | ignore).
    - No type with a rule -> pending, grouped under its first type (or "(no type)").
      A contact with no type follows the rule of the key "(no type)", when there is one.
    - contacts.auto_import_new false: a new contact that would be imported by its type is
      pending (rule "new").
    - contact_type = the deciding type (else the first type, else None).
    """
    section = doc.contacts
    tenant = ctx.tenant_id
    out = _Collector("contacts", tenant)
    new = ctx.new_psa_ids.get("contacts") or ()
    existing = ctx.existing_records.get("contacts") or {}
    index = _company_index(companies) if section.enabled else {}
    for rec in records:
        psa_id = str(rec["psa_id"])
        types = rec.get("types") or ()
        deciding_type, target = _first_rule(types or (NO_TYPE,), section.types)
        contact_type = (deciding_type or types[0]) if types else None
        group = contact_type or NO_TYPE
        if not section.enabled:
            out.skip(psa_id, IGNORED, "contacts are disabled (contacts.enabled is false)", "disabled", group)
            continue
        company = _parent_blocker(rec.get("company_psa_id"), index, "contact")
        if isinstance(company, tuple):
            out.skip(psa_id, company[0], company[1], company[2], group)
            continue
        first, last = rec.get("first_name"), rec.get("last_name")
        rule = section.records.get(psa_id)
        if rule is not None:
            if rule.action == "ignore":
                out.skip(psa_id, IGNORED, _record_reason(psa_id, rule), "record", group)
                continue
            hg_id = record_id(tenant, "contacts", psa_id)
            if rule.action == "map":
                hg_id = rule.to
                target_record = existing.get(rule.to) or {}
                if "first_name" in target_record or "last_name" in target_record:
                    first, last = target_record.get("first_name"), target_record.get("last_name")
                elif target_record.get("name"):
                    first, last = _split_name(target_record["name"])
            elif rule.action == "import_as":
                first, last = _split_name(rule.name)
            reason, tag = _record_reason(psa_id, rule), "record"
        elif deciding_type is None:
            reason = f'contact type "{types[0]}" is not mapped' if types else "contact has no type"
            out.skip(psa_id, PENDING, reason, "unmapped", group)
            continue
        elif target == "ignore":
            out.skip(psa_id, IGNORED, f'contact type "{deciding_type}" -> ignore (contacts.types)', "type", group)
            continue
        elif not section.auto_import_new and psa_id in new:
            reason = f'new contact of type "{deciding_type}" waits for review (contacts.auto_import_new is false)'
            out.skip(psa_id, PENDING, reason, "new", group)
            continue
        else:
            hg_id = record_id(tenant, "contacts", psa_id)
            reason, tag = f'contact type "{deciding_type}" -> import (contacts.types)', "type"
        row = {"id": hg_id, "psa_id": psa_id, "company_id": company, "first_name": first,
               "last_name": last, "email": rec.get("email"), "contact_type": contact_type,
               "invite_status": NOT_INVITED}
        out.load(psa_id, row, reason, tag, group)
    return out.result


# --- products -------------------------------------------------------------------------------


def _category_names(categories: Iterable[dict] | None) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """PSA category id -> name (top level), subcategory id -> name, and all known names."""
    top: dict[str, str] = {}
    sub: dict[str, str] = {}
    names: set[str] = set()
    for cat in categories or ():
        name = str(cat.get("name") or "").strip()
        if not name:
            continue
        names.add(name)
        (sub if cat.get("parent_psa_id") not in (None, "") else top)[str(cat.get("psa_id"))] = name
    return top, sub, names


class _ProductCategories:
    """Resolves category paths to ids for one run; creates the tenant's custom categories."""

    def __init__(self, ctx: MappingContext) -> None:
        self.tree = ctx.category_tree.copy(tenant_id=ctx.tenant_id)
        self.used_custom: dict[str, None] = {}  # ordered set of custom paths that got a product

    def use(self, path: str, *, create: bool) -> str | None:
        """The id of `path`, creating it (and its parent) as custom when `create`."""
        if path not in self.tree:
            if not create:
                return None
            self.tree.add_custom(path)
        if self.tree.is_custom(path):
            parent = parent_path(path)
            if parent is not None and self.tree.is_custom(parent):
                self.used_custom.setdefault(parent)
            self.used_custom.setdefault(path)
        return self.tree.id_of(path)

    def rows(self) -> list[dict]:
        ordered = sorted(self.used_custom, key=lambda p: parent_path(p) is not None)
        return [self.tree.row(path) for path in ordered]


def _import_target(rule: Rule, rule_path: str, product_sub: str | None) -> str:
    """The category path a category rule `import` / `import_as` puts a product in.

    import of "Cat/Sub" -> "Cat/Sub"; import of "Cat" -> "Cat", or "Cat/Sub" for a product in
    a PSA subcategory (the PSA structure is kept). import_as "X" on "Cat/Sub" -> "X";
    import_as "X" on "Cat" -> "X", or "X/Sub" for a product in a subcategory; import_as "X/Y"
    -> "X/Y".
    """
    base = rule.name if rule.action == "import_as" else rule_path
    if "/" not in rule_path and "/" not in base and product_sub:
        return f"{base}/{product_sub}"
    return base


@dataclass(slots=True)
class _Verdict:
    """How one product is decided, before its category ids are resolved."""

    outcome: str
    reason: str
    rule: str
    target: str | None = None  # mapped: the category path the product goes to
    create: bool = False  # the target may be created as a tenant custom category
    source: str | None = None  # mapping_source
    shares: tuple[Share, ...] = ()  # distribution
    name: str | None = None  # import_as: the product's new name


class _ProductRules:
    """The precedence of section 3 for one product; pure (no category is created here)."""

    def __init__(self, section: ProductsSection, ctx: MappingContext, tree: CategoryTree) -> None:
        self.section = section
        self.by_category = section.mode == "by_category"
        self.smart = section.smart_mapping
        self.suggest = ctx.suggest if section.smart_mapping.enabled else None
        self.tree = tree

    def verdict(self, rec: dict, psa_id: str, sku: str | None, cat: str | None, sub: str | None) -> _Verdict:
        records = self.section.records
        key, rule = psa_id, records.get(psa_id)
        if rule is None and sku is not None:
            key, rule = sku, records.get(sku)
        if rule is None:
            return self.after_record(rec, psa_id, sku, cat, sub, forced=False)
        reason = _record_reason(key, rule)
        if rule.action == "ignore":
            return _Verdict(IGNORED, reason, "record")
        if rule.action == "map":
            return _Verdict(MAPPED, reason, "record", rule.to, source="record")
        # import / import_as force the import; the category comes from the next rules
        verdict = self.after_record(rec, psa_id, sku, cat, sub, forced=True)
        if verdict.outcome == MAPPED:
            verdict.reason, verdict.rule = f"{reason}; {verdict.reason}", "record"
        else:
            verdict.reason = f"{reason}, but {verdict.reason}"
        if rule.action == "import_as":
            verdict.name = rule.name
        return verdict

    def after_record(
        self, rec: dict, psa_id: str, sku: str | None, cat: str | None, sub: str | None, *, forced: bool
    ) -> _Verdict:
        section = self.section
        path = f"{cat}/{sub}" if sub else cat
        # 2. distribution
        dist_key, shares = psa_id, section.distributions.get(psa_id)
        if shares is None and sku is not None:
            dist_key, shares = sku, section.distributions.get(sku)
        if shares:
            main = max(range(len(shares)), key=lambda i: (shares[i].pct, -i))  # first on ties
            reason = f"distribution {dist_key}: " + ", ".join(f"{s.to} {s.pct:g}%" for s in shares)
            return _Verdict(MAPPED, reason, "distribution", shares[main].to, source="distribution", shares=shares)
        # 3. category rule: "Cat/Sub" before "Cat"
        if self.by_category and path is not None:
            rule_path, rule, tag = path, section.categories.get(path), "subcategory" if sub else "category"
            if rule is None and sub:
                rule_path, rule, tag = cat, section.categories.get(cat), "category"
            if rule is not None and not (forced and rule.action == "ignore"):
                if rule.action == "ignore":
                    return _Verdict(IGNORED, f'category "{rule_path}" -> ignore (products.categories)', tag)
                if rule.action == "map":
                    reason = f'category "{rule_path}" -> {rule.to} (products.categories)'
                    return _Verdict(MAPPED, reason, tag, rule.to, source="category")
                target = _import_target(rule, rule_path, sub)
                verb = "imported" if rule.action == "import" else "imported as"
                reason = f'category "{rule_path}" {verb} "{target}" (products.categories)'
                return _Verdict(MAPPED, reason, tag, target, create=True, source="category")
        # 4. smart mapping
        note = ""
        if self.suggest is not None:
            suggestion = self.suggest(rec)
            if suggestion is not None:
                spath, confidence = suggestion
                if confidence >= self.smart.min_confidence and spath in self.tree:
                    reason = f"smart mapping -> {spath} (confidence {confidence:.2f} >= {self.smart.min_confidence:g})"
                    return _Verdict(MAPPED, reason, "smart", spath, source="smart")
                note = f"; smart mapping suggests {spath} with confidence {confidence:.2f}"
        # 5. auto-import the PSA category
        if section.auto_import_new_categories and path is not None:
            reason = f'category "{path}" imported automatically (products.auto_import_new_categories)'
            return _Verdict(MAPPED, reason, "auto_import", path, create=True, source="category")
        # 6. pending
        reason = f'product category "{path}" is not mapped' if path else "product has no category"
        return _Verdict(PENDING, reason + note, "unmapped")


def map_products(
    records: Iterable[dict],
    doc: MappingDocument,
    ctx: MappingContext,
    categories: list[dict] | None = None,
) -> MappingResult:
    """Products -> `products` rows, custom `categories` and `product_distributions`.

    Precedence (product.md section 3), first that applies wins:
    1. record rule (products.records, by PSA id, else by SKU): ignore; map (to a category path,
       mapping_source "record"); import (forces the import: the category comes from the next
       rules, a category `ignore` is skipped, pending when none gives a category); import_as
       (renames the product, then as import). The decision's rule is "record".
    2. distribution (by PSA id, else SKU): category_id = the share with the largest pct (the
       first on ties); one product_distributions row per share; mapping_source "distribution".
    3. category rule, mode by_category only: the "Cat/Sub" rule, else the "Cat" rule
       (rule "subcategory" / "category"). map -> the `to` path; ignore -> ignored;
       import / import_as -> a custom category (see _import_target), parent created as custom
       when it is not an existing path. mapping_source "category".
    4. smart mapping: smart_mapping.enabled, ctx.suggest gives a path in the tree with a
       confidence >= min_confidence. mapping_source "smart".
    5. auto_import_new_categories: the product's PSA path is imported as a custom category
       (an existing path with that name is used as is). mapping_source "category".
    6. otherwise pending, grouped under its PSA path "Cat/Sub" (or "(no category)").
    - A target path no longer in the category tree makes the product pending.
    - `categories` (the PSA's product_categories) lets a product's category / subcategory
      given as a PSA id be read as its name.
    - result.categories: every tenant custom category a product was put in (new or existing,
      with the parent of a custom subcategory), once each.
    """
    tenant = ctx.tenant_id
    top_by_id, sub_by_id, known_names = _category_names(categories)
    tree = _ProductCategories(ctx)
    rules = _ProductRules(doc.products, ctx, tree.tree)
    out = _Collector("products", tenant)
    result = out.result

    for rec in records:
        psa_id = str(rec["psa_id"])
        sku = rec.get("sku")
        sku = str(sku) if sku not in (None, "") else None
        cat, sub = rec.get("category"), rec.get("subcategory")
        cat = str(cat).strip() or None if cat is not None else None
        sub = str(sub).strip() or None if sub is not None and cat is not None else None
        if cat is not None and cat not in known_names and cat in top_by_id:
            cat = top_by_id[cat]
        if sub is not None and sub not in known_names and sub in sub_by_id:
            sub = sub_by_id[sub]
        group = (f"{cat}/{sub}" if sub else cat) or NO_CATEGORY

        verdict = rules.verdict(rec, psa_id, sku, cat, sub)
        if verdict.outcome != MAPPED:
            out.skip(psa_id, verdict.outcome, verdict.reason, verdict.rule, group)
            continue
        hg_id = record_id(tenant, "products", psa_id)
        owner = out.taken_by(hg_id)
        targets = [share.to for share in verdict.shares] or [verdict.target]
        missing = next((path for path in targets if path not in tree.tree and not verdict.create), None)
        if owner is not None or missing is not None:
            why = (f"HighGround id {hg_id} is already used by PSA record {owner}" if owner is not None
                   else f'{verdict.reason}, but category "{missing}" does not exist')
            out.skip(psa_id, PENDING, why, verdict.rule, group)
            continue
        row = {"id": hg_id, "psa_id": psa_id, "sku": sku, "name": verdict.name or rec.get("name"),
               "category_id": tree.use(verdict.target, create=verdict.create),
               "mapping_source": verdict.source, "price": rec.get("price"), "cost": rec.get("cost")}
        out.load(psa_id, row, verdict.reason, verdict.rule, group)
        result.distributions.extend(
            {"tenant_id": tenant, "product_id": hg_id, "category_id": tree.use(share.to, create=False),
             "pct": share.pct}
            for share in verdict.shares
        )

    result.categories = tree.rows()
    return result



# --- members --------------------------------------------------------------------------------


def map_members(records: Iterable[dict], doc: MappingDocument, ctx: MappingContext) -> MappingResult:
    """Members (MSP staff) -> `members` rows (invite_status always "not_invited").

    - members.enabled false -> every member ignored (rule "disabled").
    - Record rule (members.records): ignore; import; import_as (the given name); map (id = the
      target; name of ctx.existing_records["members"][target] when given, else the PSA's).
    - members.auto_import_new false: a new member (ctx.new_psa_ids["members"]) is pending.
    - Otherwise imported (rule "default"). name = the PSA name, else "first last".
    """
    section = doc.members
    tenant = ctx.tenant_id
    out = _Collector("members", tenant)
    new = ctx.new_psa_ids.get("members") or ()
    existing = ctx.existing_records.get("members") or {}
    for rec in records:
        psa_id = str(rec["psa_id"])
        if not section.enabled:
            out.skip(psa_id, IGNORED, "members are disabled (members.enabled is false)", "disabled")
            continue
        name = rec.get("name") or " ".join(
            part for part in (rec.get("first_name"), rec.get("last_name")) if part
        ) or None
        hg_id = record_id(tenant, "members", psa_id)
        rule = section.records.get(psa_id)
        if rule is not None:
            reason, tag = _record_reason(psa_id, rule), "record"
            if rule.action == "ignore":
                out.skip(psa_id, IGNORED, reason, tag)
                continue
            if rule.action == "map":
                hg_id = rule.to
                name = (existing.get(rule.to) or {}).get("name") or name
            elif rule.action == "import_as":
                name = rule.name
        elif not section.auto_import_new and psa_id in new:
            out.skip(psa_id, PENDING, "new member waits for review (members.auto_import_new is false)", "new")
            continue
        else:
            reason, tag = "members are imported (members.enabled)", "default"
        row = {"id": hg_id, "psa_id": psa_id, "name": name, "email": rec.get("email"),
               "invite_status": NOT_INVITED}
        out.load(psa_id, row, reason, tag)
    return out.result


# --- assets ---------------------------------------------------------------------------------


def map_assets(
    records: Iterable[dict], doc: MappingDocument, ctx: MappingContext, companies: MappingResult
) -> MappingResult:
    """Assets (configurations) -> `assets` rows.

    - assets.enabled false -> every asset ignored (rule "disabled").
    - The asset's company decides first, as for contacts (rule "parent"): no company ->
      ignored, company ignored -> ignored, company pending or unknown -> pending.
    - Record rule (assets.records): ignore; import; import_as (the given name); map (id = the
      target, name of ctx.existing_records["assets"][target] when given).
    - Otherwise imported (rule "default"). company_id = the company's HighGround id.
    - group = the asset type.
    """
    section = doc.assets
    tenant = ctx.tenant_id
    out = _Collector("assets", tenant)
    existing = ctx.existing_records.get("assets") or {}
    index = _company_index(companies) if section.enabled else {}
    records_rules = section.records
    for rec in records:
        psa_id = str(rec["psa_id"])
        asset_type = rec.get("asset_type")
        if not section.enabled:
            out.skip(psa_id, IGNORED, "assets are disabled (assets.enabled is false)", "disabled", asset_type)
            continue
        company = _parent_blocker(rec.get("company_psa_id"), index, "asset")
        if isinstance(company, tuple):
            out.skip(psa_id, company[0], company[1], company[2], asset_type)
            continue
        name = rec.get("name")
        hg_id = None
        rule = records_rules.get(psa_id) if records_rules else None
        if rule is not None:
            reason, tag = _record_reason(psa_id, rule), "record"
            if rule.action == "ignore":
                out.skip(psa_id, IGNORED, reason, tag, asset_type)
                continue
            if rule.action == "map":
                hg_id = rule.to
                name = (existing.get(rule.to) or {}).get("name") or name
            elif rule.action == "import_as":
                name = rule.name
        else:
            reason, tag = "assets are imported (assets.enabled)", "default"
        row = {"id": hg_id or record_id(tenant, "assets", psa_id), "psa_id": psa_id, "company_id": company,
               "name": name, "asset_type": asset_type, "serial_number": rec.get("serial_number")}
        out.load(psa_id, row, reason, tag, asset_type)
    return out.result


# --- dispatcher -----------------------------------------------------------------------------


def map_entity(
    entity: str,
    records: Iterable[dict],
    doc: MappingDocument,
    ctx: MappingContext,
    *,
    companies: MappingResult | None = None,
    categories: list[dict] | None = None,
) -> MappingResult:
    """Maps one loaded entity; contacts and assets need the `companies` result."""
    if entity not in LOADED_ENTITIES:
        raise ValueError(f"unknown entity {entity!r} (expected one of {', '.join(LOADED_ENTITIES)})")
    if entity in ("contacts", "assets") and companies is None:
        raise ValueError(f"mapping {entity} needs the companies result")
    if entity == "companies":
        return map_companies(records, doc, ctx)
    if entity == "contacts":
        return map_contacts(records, doc, ctx, companies)
    if entity == "products":
        return map_products(records, doc, ctx, categories)
    if entity == "members":
        return map_members(records, doc, ctx)
    return map_assets(records, doc, ctx, companies)

