"""Mapping document: every error class names its line and reason; defaults; round trip."""

import textwrap

import pytest

from hg_pipeline.mapping.categories import CategoryTree, global_category_paths
from hg_pipeline.mapping.document import (
    MappingDocument,
    MappingError,
    Rule,
    Share,
    default_document,
    parse_document,
)

SPEC_EXAMPLE = """\
companies:
  auto_import_new: true          # new companies of imported types are created automatically
  types:                         # PSA company type -> client | prospect | supplier | manufacturer | ignore
    Customer: client
    Prospect: prospect
    Vendor: supplier
  records:                       # per PSA company id; overrides the type rule
    "250": {action: map, to: "hg-company-id"}
    "251": {action: import_as, name: "Acme Ltd"}
    "252": {action: ignore}
contacts:
  enabled: true
  auto_import_new: true
  types: {Billing: import, "End User": import, Vendor: ignore}
  records: {"9001": {action: ignore}}
products:
  auto_import_new_categories: true
  mode: by_category              # or by_product
  categories:                    # PSA "Category" or "Category/Subcategory"
    "Hardware/Laptops": {action: map, to: "Hardware/End User Devices"}
    "Software": {action: import}
    "Misc": {action: ignore}
    "Security": {action: import_as, name: "Cyber Security"}
  records:                       # by_product mappings and product exceptions; win over everything
    "SKU-123": {action: map, to: "Security/Email Security"}
  distributions:                 # generic product distribution; percentages sum to 100
    "MSP-BUNDLE-150":
      - {to: "Security/Endpoint Protection", pct: 40}
      - {to: "Managed Services/Helpdesk & Support", pct: 60}
  smart_mapping: {enabled: true, min_confidence: 0.6}
members:
  enabled: true
  auto_import_new: true
  records: {"17": {action: ignore}, "18": {action: import_as, name: "Sam J."}}
assets:
  enabled: false
"""


def error_of(text: str, **kwargs) -> MappingError:
    with pytest.raises(MappingError) as caught:
        parse_document(textwrap.dedent(text), **kwargs)
    return caught.value


# --- valid documents ------------------------------------------------------------------------


def test_spec_example_parses(global_paths):
    doc = parse_document(SPEC_EXAMPLE, company_ids={"hg-company-id"}, category_paths=global_paths)
    assert doc.companies.types == {"Customer": "client", "Prospect": "prospect", "Vendor": "supplier"}
    assert doc.companies.records["250"] == Rule("map", to="hg-company-id")
    assert doc.companies.records["251"] == Rule("import_as", name="Acme Ltd")
    assert doc.contacts.types["End User"] == "import"
    assert doc.products.categories["Security"] == Rule("import_as", name="Cyber Security")
    assert doc.products.distributions["MSP-BUNDLE-150"] == (
        Share("Security/Endpoint Protection", 40),
        Share("Managed Services/Helpdesk & Support", 60),
    )
    assert doc.products.smart_mapping.enabled is True
    assert doc.products.smart_mapping.min_confidence == 0.6
    assert doc.members.records["18"].name == "Sam J."
    assert doc.assets.enabled is False


def test_empty_document_has_the_defaults():
    doc = parse_document("")
    assert doc == MappingDocument()
    assert doc.companies.types == {} and doc.companies.auto_import_new is True
    assert doc.contacts.enabled is True and doc.contacts.auto_import_new is True
    assert doc.members.enabled is True and doc.members.auto_import_new is True
    assert doc.assets.enabled is True
    assert doc.products.mode == "by_category"
    assert doc.products.auto_import_new_categories is False
    assert doc.products.smart_mapping.enabled is False


def test_absent_sections_get_defaults_and_empty_sections_are_allowed():
    doc = parse_document("companies:\n  types: {Customer: client}\ncontacts:\n")
    assert doc.contacts == MappingDocument().contacts
    assert doc.products == MappingDocument().products


def test_plain_int_keys_become_strings_as_written():
    doc = parse_document("companies:\n  records:\n    250: {action: ignore}\n    0012: {action: import}\n")
    assert set(doc.companies.records) == {"250", "0012"}


def test_short_form_actions():
    doc = parse_document("products:\n  categories: {Misc: ignore, Software: import}\n")
    assert doc.products.categories == {"Misc": Rule("ignore"), "Software": Rule("import")}


def test_import_as_category_path_with_new_parent(global_paths):
    doc = parse_document(
        'products:\n  categories:\n    "Labor/Onsite": {action: import_as, name: "Field Work/Onsite"}\n',
        category_paths=global_paths,
    )
    assert doc.products.categories["Labor/Onsite"].name == "Field Work/Onsite"


def test_map_to_tenant_custom_category_is_allowed():
    tree = CategoryTree(custom_paths=["Field Work/Onsite"], tenant_id="acme")
    doc = parse_document(
        'products:\n  records:\n    "7": {action: map, to: "Field Work/Onsite"}\n', category_paths=set(tree.paths())
    )
    assert doc.products.records["7"].to == "Field Work/Onsite"


def test_contact_and_member_map_targets_are_not_checked():
    doc = parse_document(
        "contacts:\n  records: {'5': {action: map, to: anything}}\n"
        "members:\n  records: {'6': {action: map, to: other}}\n",
        company_ids=set(),
    )
    assert doc.contacts.records["5"].to == "anything"


def test_distribution_tolerates_float_rounding(global_paths):
    doc = parse_document(
        "products:\n  distributions:\n    B:\n"
        "      - {to: Security/Endpoint Protection, pct: 33.3333333}\n"
        "      - {to: Security/Email Security, pct: 33.3333333}\n"
        "      - {to: Security/SIEM & SOC, pct: 33.3333334}\n",
        category_paths=global_paths,
    )
    assert len(doc.products.distributions["B"]) == 3


def test_default_document_validates_against_the_global_tree(global_paths):
    doc = parse_document(default_document(), company_ids=set(), category_paths=global_paths)
    assert doc.companies.types == {
        "Customer": "client", "Prospect": "prospect", "Vendor": "supplier",
        "Partner": "supplier", "Competitor": "ignore",
    }
    assert doc.contacts.types == {
        "Billing": "import", "End User": "import", "Decision Maker": "import", "Vendor Contact": "ignore",
    }
    assert doc.products.mode == "by_category"
    assert doc.products.categories["Backup"] == Rule("map", to="Backup & Recovery/Backup Software")
    assert doc.products.categories["Misc"] == Rule("ignore")
    assert doc.products.categories["Labor/Support"].to == "Managed Services/Helpdesk & Support"
    assert doc.members.enabled and doc.assets.enabled


def test_source_text_round_trips_exactly():
    doc = parse_document(SPEC_EXAMPLE)
    assert doc.to_yaml() == SPEC_EXAMPLE
    assert parse_document(default_document()).to_yaml() == default_document()


def test_built_document_dumps_to_yaml_that_parses_back_equal(global_paths):
    doc = parse_document(SPEC_EXAMPLE)
    rebuilt = MappingDocument(
        companies=doc.companies, contacts=doc.contacts, products=doc.products,
        members=doc.members, assets=doc.assets,
    )
    assert rebuilt.source_text is None
    again = parse_document(rebuilt.to_yaml(), category_paths=global_paths)
    assert again == doc
    assert again.to_yaml() == rebuilt.to_yaml()


# --- errors: each names the line and the reason ----------------------------------------------


def test_error_str_is_line_and_reason():
    err = MappingError(3, "bad")
    assert str(err) == "line 3: bad" and err.line == 3 and err.reason == "bad"
    assert isinstance(err, ValueError)
    assert str(MappingError(None, "bad")) == "bad"


def test_yaml_syntax_error():
    err = error_of("""\
        companies:
          types:
            Customer: client
           Vendor: supplier
        """)
    assert err.line == 4
    assert err.reason.startswith("YAML syntax error")


def test_yaml_syntax_error_unclosed_flow():
    err = error_of("companies:\n  types: {Customer: client\ncontacts:\n  enabled: true\n")
    assert err.line is not None and err.line >= 2
    assert "YAML syntax error" in err.reason


def test_unknown_top_level_key():
    err = error_of("companies: {}\ncontcts:\n  enabled: true\n")
    assert err.line == 2
    assert 'unknown key "contcts" at top level' in err.reason


def test_unknown_nested_key():
    err = error_of("""\
        contacts:
          enabled: true
          enabeld: false
        """)
    assert err.line == 3
    assert 'unknown key "enabeld" in contacts' in err.reason


def test_unknown_key_inside_a_rule():
    err = error_of("""\
        companies:
          records:
            "250":
              action: map
              target: x
        """)
    assert err.line == 5
    assert 'unknown key "target" in companies.records["250"]' in err.reason


def test_unknown_key_in_smart_mapping():
    err = error_of("products:\n  smart_mapping:\n    enabled: true\n    threshold: 0.5\n")
    assert (err.line, "threshold" in err.reason) == (4, True)


def test_unknown_action():
    err = error_of("""\
        products:
          categories:
            Misc: {action: drop}
        """)
    assert err.line == 3
    assert 'unknown action "drop"' in err.reason and "products.categories" in err.reason


def test_unknown_company_type_target():
    err = error_of("""\
        companies:
          types:
            Customer: client
            Vendor: suplier
        """)
    assert err.line == 4
    assert 'companies.types["Vendor"]: unknown target "suplier"' in err.reason
    assert "client, prospect, supplier, manufacturer or ignore" in err.reason


def test_unknown_contact_type_target():
    err = error_of("contacts:\n  types:\n    Billing: client\n")
    assert err.line == 3 and "import or ignore" in err.reason


def test_map_to_unknown_company_id():
    err = error_of("""\
        companies:
          records:
            "250": {action: map, to: "hg-1"}
            "251":
              action: map
              to: "hg-404"
        """, company_ids={"hg-1"})
    assert err.line == 6
    assert '"hg-404" is not a HighGround company of this tenant' in err.reason


def test_map_to_company_not_checked_without_ids():
    doc = parse_document('companies:\n  records: {"1": {action: map, to: "hg-404"}}\n')
    assert doc.companies.records["1"].to == "hg-404"


def test_two_records_mapped_to_one_company():
    err = error_of("""\
        companies:
          records:
            "1": {action: map, to: "hg-1"}
            "2": {action: map, to: "hg-1"}
        """)
    assert err.line == 4 and 'already the target of record "1"' in err.reason


def test_map_to_category_not_in_the_tree(global_paths):
    err = error_of("""\
        products:
          categories:
            Hardware/Laptops: {action: map, to: Hardware/End User Devices}
            Hardware/Tablets: {action: map, to: Hardware/Tablets}
        """, category_paths=global_paths)
    assert err.line == 4
    assert 'category "Hardware/Tablets" is not in the category tree' in err.reason


def test_product_record_map_to_category_not_in_the_tree(global_paths):
    err = error_of('products:\n  records:\n    SKU-1: {action: map, to: "Nope"}\n', category_paths=global_paths)
    assert err.line == 3 and '"Nope" is not in the category tree' in err.reason


def test_distribution_target_not_in_the_tree(global_paths):
    err = error_of("""\
        products:
          distributions:
            B:
              - {to: Security/Endpoint Protection, pct: 50}
              - {to: Security/Unknown, pct: 50}
        """, category_paths=global_paths)
    assert err.line == 5 and "Security/Unknown" in err.reason


def test_distribution_percentages_not_summing_to_100():
    err = error_of("""\
        products:
          distributions:
            "MSP-BUNDLE-150":
              - {to: "Security/Endpoint Protection", pct: 40}
              - {to: "Managed Services/Helpdesk & Support", pct: 50}
        """)
    assert err.line == 3
    assert err.reason.endswith("percentages sum to 90, not 100")
    assert str(err) == f"line 3: {err.reason}"


@pytest.mark.parametrize(
    ("share", "reason"),
    [
        ("{to: A/B, pct: 0}", "must be greater than 0"),
        ("{to: A/B, pct: -5}", "must be greater than 0"),
        ('{to: A/B, pct: "50"}', "expected a number"),
        ("{to: A/B}", "missing pct"),
        ("{to: A/B, pct: 100, share: 1}", 'unknown key "share"'),
    ],
)
def test_bad_distribution_share(share, reason):
    err = error_of(f"products:\n  distributions:\n    X:\n      - {share}\n")
    assert err.line == 4 and reason in err.reason


def test_import_as_without_name():
    err = error_of("""\
        companies:
          records:
            "251": {action: import_as}
        """)
    assert err.line == 3
    assert err.reason == 'companies.records["251"]: action import_as needs a name'


def test_map_without_to():
    err = error_of("members:\n  records:\n    '17':\n      action: map\n")
    assert err.line == 4 and "action map needs a target" in err.reason


def test_name_with_other_action():
    err = error_of("members:\n  records:\n    '17': {action: ignore, name: x}\n")
    assert err.line == 3 and "name is only used with action import_as" in err.reason


def test_bad_category_import_as_path():
    err = error_of("products:\n  categories:\n    Misc:\n      action: import_as\n      name: a/b/c\n")
    assert err.line == 5 and "is not a category name" in err.reason


def test_bad_mode():
    err = error_of("""\
        products:
          mode: by_sku
        """)
    assert err.line == 2
    assert err.reason == 'products.mode: unknown mode "by_sku" (expected by_category or by_product)'


@pytest.mark.parametrize("value", ['"true"', "1", "maybe", "", "[true]"])
def test_non_boolean_enabled(value):
    err = error_of(f"contacts:\n  types: {{}}\n  enabled: {value}\n")
    assert err.line == 3
    assert err.reason.startswith("contacts.enabled: expected true or false")


def test_min_confidence_out_of_range():
    err = error_of("products:\n  smart_mapping: {enabled: true, min_confidence: 1.5}\n")
    assert err.line == 2 and "between 0 and 1" in err.reason


def test_duplicate_key():
    err = error_of("companies:\n  types:\n    Customer: client\n    Customer: prospect\n")
    assert err.line == 4 and 'duplicate key "Customer" (first on line 3)' in err.reason


def test_section_must_be_a_mapping():
    err = error_of("companies:\n  - Customer\n")
    assert err.line == 2 and "companies: expected a mapping" in err.reason


def test_non_string_key():
    err = error_of("companies:\n  types:\n    true: client\n")
    assert err.line == 3 and "keys must be strings" in err.reason


def test_top_level_must_be_a_mapping():
    err = error_of("- companies\n")
    assert err.line == 1


def test_global_category_paths_keeps_file_order():
    paths = global_category_paths()
    assert paths[:3] == ["Hardware", "Hardware/End User Devices", "Hardware/Mobile Devices"]
    assert "Other/Miscellaneous" in paths and len(paths) == len(set(paths))


def test_documents_and_errors_pickle():
    import pickle

    doc = parse_document(SPEC_EXAMPLE)
    again = pickle.loads(pickle.dumps(doc))
    assert again == doc and again.to_yaml() == SPEC_EXAMPLE
    err = pickle.loads(pickle.dumps(MappingError(4, "bad")))
    assert (err.line, err.reason, str(err)) == (4, "bad", "line 4: bad")


# --- every problem of a document, each with its line -------------------------------------------


def test_every_problem_is_reported_with_its_line_sorted_by_line(global_paths):
    err = error_of("""\
        companies:
          types:
            Customer: clinet
            Vendor: supplier
          records:
            "250": {action: promote}
            "251": {action: map, to: hg-404}
        contacts:
          enabeld: true
          types: {Billing: import}
        products:
          distributions:
            B:
              - {to: Security/Endpoint Protection, pct: 40}
              - {to: Security/Email Security, pct: 50}
          categories:
            Misc: {action: map, to: Hardware/Toasters}
        membres: {}
        """, company_ids={"hg-1"}, category_paths=global_paths)
    lines = [p.line for p in err.problems]
    assert lines == [3, 6, 7, 9, 13, 17, 18]
    reasons = [p.reason for p in err.problems]
    assert 'unknown target "clinet"' in reasons[0]
    assert 'unknown action "promote"' in reasons[1]
    assert '"hg-404" is not a HighGround company' in reasons[2]
    assert 'unknown key "enabeld" in contacts' in reasons[3]
    assert reasons[4].endswith("percentages sum to 90, not 100")
    assert 'category "Hardware/Toasters" is not in the category tree' in reasons[5]
    assert 'unknown key "membres" at top level' in reasons[6]
    # the first problem is the error's line, reason and one-line text
    assert (err.line, err.reason) == (3, reasons[0]) and str(err) == f"line 3: {reasons[0]}"
    assert str(err.problems[3]) == f"line 9: {reasons[3]}"


def test_a_rule_is_one_unit_and_a_broken_share_skips_the_sum():
    """A misspelt key in a rule is reported once, not again as the missing key it was meant to
    be; a distribution whose share is broken does not also report a wrong sum."""
    err = error_of("""\
        companies:
          records:
            "250":
              action: map
              target: hg-1
        products:
          distributions:
            B:
              - {to: A/B, pct: 0}
              - {to: C/D, pct: 100}
        """)
    assert [p.line for p in err.problems] == [5, 9]
    assert err.problems[0].reason.startswith('unknown key "target" in companies.records["250"]')
    assert err.problems[1].reason == "products.distributions[\"B\"][0].pct: must be greater than 0, got 0"


def test_duplicate_and_non_string_keys_are_reported_and_the_rest_is_read():
    err = error_of("companies:\n  types:\n    Customer: client\n    Customer: prospect\n    true: client\n"
                   "    Vendor: seller\n")
    assert [p.line for p in err.problems] == [4, 5, 6]
    assert "duplicate key" in err.problems[0].reason and "keys must be strings" in err.problems[1].reason


def test_a_syntax_error_stays_single():
    err = error_of("companies:\n  types: {Customer: clinet\ncontacts:\n  enabeld: true\n")
    assert len(err.problems) == 1 and "YAML syntax error" in err.reason


def test_errors_with_several_problems_pickle():
    import pickle

    err = error_of("companies:\n  typos: {}\ncontacts:\n  enabeld: true\n")
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == err.problems and str(again) == str(err) == 'line 2: unknown key "typos" in companies' \
        " (expected auto_import_new, types or records)"
