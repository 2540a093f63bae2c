"""The worklist (what no rule covers, with the records behind it) and the starter mapping
generated from it: pure, no database."""

import re
import textwrap

import pytest

from hg_pipeline.mapping.document import MappingDocument, parse_document
from hg_pipeline.mapping.engine import MappingContext, map_companies, map_contacts
from hg_pipeline.mapping.template import guess_company_type, render_template
from hg_pipeline.mapping.worklist import (
    Choice,
    build_worklist,
    is_covered,
    psa_choices,
    unmapped_table,
    waiting_phrase,
)

REFERENCE = {
    "company_types": [{"psa_id": "1", "name": "Customer"}, {"psa_id": "2", "name": "Partner"},
                      {"psa_id": "3", "name": "Reseller"}],
    "contact_types": [{"psa_id": "1", "name": "Billing"}, {"psa_id": "2", "name": "End User"}],
    "product_categories": [
        {"psa_id": "cat-1", "name": "Hardware", "parent_psa_id": None, "path": "Hardware"},
        {"psa_id": "sub-1", "name": "Laptops", "parent_psa_id": "cat-1", "path": "Hardware/Laptops"},
        {"psa_id": "sub-2", "name": "Desktops", "parent_psa_id": "cat-1", "path": "Hardware/Desktops"},
        {"psa_id": "cat-2", "name": "Misc", "parent_psa_id": None, "path": "Misc"},
    ],
}
RECORDS = {
    "companies": [
        {"psa_id": "10", "types": ["Customer"]},
        {"psa_id": "11", "types": ["Customer", "Partner"]},
        {"psa_id": "12", "types": ["Customer"], "deleted": True},  # ignored by the engine: not counted
        {"psa_id": "13", "types": ["Vendor"]},  # a type met only on a record
    ],
    "contacts": [{"psa_id": "1", "types": ["Billing"]}, {"psa_id": "2", "types": []},
                 {"psa_id": "3", "types": ["Billing", "End User"]}],
    "products": [
        {"psa_id": "1", "category": "Hardware", "subcategory": "Laptops"},
        {"psa_id": "2", "category": "Hardware", "subcategory": "Laptops"},
        {"psa_id": "3", "category": "Hardware", "subcategory": None},
        {"psa_id": "4", "category": None},
    ],
}


def counts(choices):
    return {(c.kind, c.name): c.records for c in choices}


def test_every_type_and_category_is_a_choice_with_the_records_behind_it():
    choices = psa_choices(REFERENCE, RECORDS)
    assert counts(choices) == {
        ("company_types", "Customer"): 2, ("company_types", "Partner"): 1, ("company_types", "Vendor"): 1,
        ("company_types", "Reseller"): 0,
        ("contact_types", "Billing"): 2, ("contact_types", "End User"): 1, ("contact_types", "(no type)"): 1,
        ("product_categories", "Hardware"): 3, ("product_categories", "Hardware/Desktops"): 0,
        ("product_categories", "Hardware/Laptops"): 2, ("product_categories", "Misc"): 0,
    }
    # types: most records first, "(no type)" last; categories in tree order
    assert [c.name for c in choices if c.kind == "company_types"] == ["Customer", "Partner", "Vendor", "Reseller"]
    assert [c.name for c in choices if c.kind == "contact_types"] == ["Billing", "End User", "(no type)"]
    assert [c.name for c in choices if c.kind == "product_categories"] == [
        "Hardware", "Hardware/Desktops", "Hardware/Laptops", "Misc"]


@pytest.mark.parametrize("text, uncovered", [
    ("", {"Customer", "Partner", "Vendor", "Reseller", "Billing", "End User", "(no type)", "Hardware",
          "Hardware/Desktops", "Hardware/Laptops", "Misc"}),
    # a category rule covers its subcategories, a subcategory rule only itself
    ("companies: {types: {Customer: client, Partner: ignore}}\n"
     "contacts: {types: {Billing: import, \"(no type)\": ignore}}\n"
     "products: {categories: {Hardware: import, Misc/Other: ignore}}\n", {"Vendor", "Reseller", "End User", "Misc"}),
    ("contacts: {enabled: false}\nproducts: {auto_import_new_categories: true}\n",
     {"Customer", "Partner", "Vendor", "Reseller"}),
    ("products: {mode: by_product}\n", {"Customer", "Partner", "Vendor", "Reseller", "Billing", "End User",
                                        "(no type)"}),
])
def test_a_choice_is_unmapped_when_no_rule_decides_its_records(text, uncovered):
    document = parse_document(text)
    choices = psa_choices(REFERENCE, RECORDS)
    assert {c.name for c in choices if not is_covered(document, c)} == uncovered
    worklist = build_worklist(document, choices, {"companies": {"Vendor": 1}, "members": {}})
    assert {c.name for c in worklist.unmapped} == uncovered
    assert worklist.pending == {"companies": {"Vendor": 1}} and worklist.records_waiting == 1


def test_waiting_phrase():
    assert waiting_phrase(12, 430) == "12 types and categories and 430 records wait for a decision"
    assert waiting_phrase(1, 0) == "1 type or category waits for a decision"
    assert waiting_phrase(0, 1) == "1 record waits for a decision"
    assert waiting_phrase(0, 1200) == "1,200 records wait for a decision"
    assert waiting_phrase(0, 0) == "nothing waits for a decision"


def test_unmapped_table_lists_kind_name_and_records():
    worklist = build_worklist(MappingDocument(), [Choice("company_types", "A|B", 3),
                                                  Choice("product_categories", "Misc", 0)], {})
    assert unmapped_table(worklist).splitlines()[2:] == ["| company type | A\\|B | 3 companies |",
                                                          "| product category | Misc | 0 products |"]
    assert unmapped_table(build_worklist(MappingDocument(), [], {})) == "_every type and category has a rule_"


@pytest.mark.parametrize("name, target", [
    ("Customer", "client"), ("Managed Clients", "client"), ("Prospect", "prospect"), ("Vendor", "supplier"),
    ("Suppliers", "supplier"), ("Manufacturer", "manufacturer"), ("Partner", None), ("Customerish", None),
])
def test_company_types_are_guessed_from_their_name(name, target):
    assert guess_company_type(name) == target


def test_a_fresh_template_names_everything_with_its_count_and_covers_it():
    choices = psa_choices(REFERENCE, RECORDS)
    text = render_template(choices, tenant_id="acme")
    lines = text.splitlines()

    def line(key):
        return next(line for line in lines if line.startswith(f"    {key}:"))

    assert re.fullmatch(r"    Customer: client +# 2 companies", line("Customer"))
    assert line("Partner").endswith("# 1 company; decide: client, prospect, supplier, manufacturer or ignore")
    assert line("Partner").startswith("    Partner: ignore ")
    assert line("Reseller").endswith("# 0 companies; decide: client, prospect, supplier, manufacturer or ignore")
    assert line("Vendor").startswith("    Vendor: supplier ")
    assert line('"(no type)"').endswith("# 1 contact without a type")
    assert line("Hardware").endswith("# 3 products") and line("Hardware/Laptops").endswith("# 2 products")
    assert "hg-pipeline mapping import acme FILE" in lines[2]
    # comments line up in one column
    assert len({row.index(" # ") for row in lines if " # " in row and not row.startswith("#")}) == 1

    document = parse_document(text)
    assert build_worklist(document, choices, {}).unmapped == ()
    settings = document.to_dict()
    assert settings["contacts"]["enabled"] and settings["contacts"]["auto_import_new"]
    assert settings["members"]["enabled"] and settings["members"]["auto_import_new"]
    assert settings["contacts"]["types"] == {"Billing": "import", "End User": "import", "(no type)": "import"}
    assert settings["products"]["categories"] == {
        path: {"action": "import"} for path in ("Hardware", "Hardware/Desktops", "Hardware/Laptops", "Misc")}


def test_the_no_type_rule_of_the_template_decides_records_without_a_type():
    document = parse_document(render_template(psa_choices(REFERENCE, RECORDS)))
    context = MappingContext(tenant_id="acme")
    companies = map_companies([{"psa_id": "1", "name": "A", "types": []}], parse_document(
        'companies: {types: {"(no type)": prospect}}\n'), context)
    assert [(d.outcome, d.group) for d in companies.decisions] == [("mapped", "(no type)")]
    assert (companies.rows[0]["hg_type"], companies.rows[0]["psa_type"]) == ("prospect", None)
    parents = map_companies([{"psa_id": "9", "name": "Parent", "types": ["Customer"]}], document, context)
    contacts = map_contacts([{"psa_id": "5", "company_psa_id": "9", "first_name": "Ann", "types": []}],
                            document, context, parents)
    assert [(d.outcome, d.rule, d.group) for d in contacts.decisions] == [("mapped", "type", "(no type)")]
    assert contacts.rows[0]["contact_type"] is None


def test_names_that_yaml_would_misread_are_quoted_and_read_back_as_written():
    names = ["Yes", "No", "123", "0012", "1.5", "null", "Key: value", "#hash", "Name, Inc", "[x]", "Café Owners",
             "O'Brien Partners", "Title & Escrow", "Tab\there", 'Say "hi"', "~"]
    choices = [Choice("company_types", name, 1) for name in names] + [Choice("contact_types", n, 1) for n in names]
    document = parse_document(render_template(choices))
    assert list(document.companies.types) == names
    assert list(document.contacts.types) == names


def test_a_category_name_no_key_can_hold_becomes_a_comment():
    choices = [Choice("product_categories", "Cloud/Hosting/VMs", 4), Choice("product_categories", "Cloud", 4)]
    text = render_template(choices)
    assert '    # "Cloud/Hosting/VMs" cannot be named in a mapping (4 products)' in text.splitlines()
    assert list(parse_document(text).products.categories) == ["Cloud"]


CURRENT = textwrap.dedent("""\
    companies:
      auto_import_new: false
      types: {Customer: prospect, Gone: supplier}
      records: {"250": {action: map, to: "hg-acme-hq"}, "251": {action: import_as, name: "Acme, Ltd"}}
    contacts:
      enabled: true
      auto_import_new: false
      types: {Billing: ignore}
      records: {"9001": {action: ignore}}
    products:
      mode: by_category
      auto_import_new_categories: false
      categories:
        Hardware/Laptops: {action: map, to: "Hardware/End User Devices"}
        Misc: ignore
        Security: {action: import_as, name: "Cyber Security"}
      records: {"SKU-123": {action: map, to: "Security/Email Security"}}
      distributions:
        "MSP-BUNDLE-150": [{to: "Security/Endpoint Protection", pct: 40}, {to: "Managed Services/Helpdesk & Support", pct: 60}]
      smart_mapping: {enabled: true, min_confidence: 0.75}
    members:
      enabled: false
      records: {"17": {action: import_as, name: "Sam J."}}
    assets:
      enabled: false
    """)


def test_the_rules_and_settings_of_the_mapping_in_force_are_kept():
    current = parse_document(CURRENT)
    choices = psa_choices(REFERENCE, RECORDS)
    text = render_template(choices, current, tenant_id="acme")
    document = parse_document(text)
    kept, now = current.to_dict(), document.to_dict()
    # the new choices got starting rules, everything the MSP decided is unchanged
    assert now["companies"]["types"] == {**kept["companies"]["types"], "Partner": "ignore", "Vendor": "supplier",
                                         "Reseller": "ignore"}
    assert now["contacts"]["types"] == {"Billing": "ignore", "End User": "import", "(no type)": "import"}
    assert now["products"]["categories"] == {**kept["products"]["categories"], "Hardware": {"action": "import"},
                                             "Hardware/Desktops": {"action": "import"}}
    for section, settings in kept.items():
        for key, value in settings.items():
            if key not in ("types", "categories"):
                assert now[section][key] == value, (section, key)
    lines = text.splitlines()
    assert any(line.startswith("    Customer: prospect ") and line.endswith("# 2 companies") for line in lines)
    assert any(line.startswith("    Gone: supplier ") and line.endswith("# not in the PSA's list now")
               for line in lines)
    assert build_worklist(document, choices, {}).unmapped == ()
