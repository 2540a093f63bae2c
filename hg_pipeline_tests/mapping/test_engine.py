"""The mapping engine: every action and precedence rule per entity, with reasons and rule tags."""

import textwrap
import time

import pytest

from hg_pipeline.entities import ENTITY_LOADS
from hg_pipeline.ids import category_id, record_id
from hg_pipeline.mapping.categories import CategoryTree
from hg_pipeline.mapping.document import parse_document
from hg_pipeline.mapping.engine import (
    MappingContext,
    map_assets,
    map_companies,
    map_contacts,
    map_entity,
    map_members,
    map_products,
)

T = "acme"


def doc(text: str = ""):
    return parse_document(textwrap.dedent(text))


def ctx(**kwargs) -> MappingContext:
    kwargs.setdefault("tenant_id", T)
    return MappingContext(**kwargs)


def company(psa_id, *types, name=None, deleted=False):
    return {"psa_id": str(psa_id), "name": name or f"Company {psa_id}", "identifier": f"C{psa_id}",
            "types": list(types), "status": "Active", "deleted": deleted}


def contact(psa_id, company_psa_id, *types):
    return {"psa_id": str(psa_id), "company_psa_id": company_psa_id, "first_name": "Ann",
            "last_name": "Lee", "email": f"c{psa_id}@x.test", "types": list(types), "inactive": False}


def product(psa_id, category=None, subcategory=None, sku=None, name=None):
    return {"psa_id": str(psa_id), "sku": sku or f"SKU-{psa_id}", "name": name or f"Product {psa_id}",
            "category": category, "subcategory": subcategory, "price": 10.0, "cost": 6.0,
            "product_class": "NonInventory", "inactive": False}


def member(psa_id, name="Sam Jones"):
    return {"psa_id": str(psa_id), "identifier": f"m{psa_id}", "first_name": "Sam", "last_name": "Jones",
            "name": name, "email": f"m{psa_id}@msp.test", "inactive": False}


def asset(psa_id, company_psa_id, asset_type="Laptop"):
    return {"psa_id": str(psa_id), "company_psa_id": company_psa_id, "name": f"Asset {psa_id}",
            "asset_type": asset_type, "serial_number": f"SN{psa_id}", "active": True}


def by_id(result):
    return {d.psa_id: d for d in result.decisions}


def rows_by_psa(result):
    return {row["psa_id"]: row for row in result.rows}


def assert_columns(result):
    expected = {"tenant_id", *ENTITY_LOADS[result.entity].columns}
    for row in result.rows:
        assert set(row) == expected
        assert row["tenant_id"] == T


COMPANIES_DOC = """\
companies:
  types: {Customer: client, Prospect: prospect, Vendor: supplier, Competitor: ignore}
  records:
    "250": {action: map, to: "hg-250"}
    "251": {action: import_as, name: "Acme Ltd"}
    "252": {action: ignore}
    "253": {action: import}
"""


# --- companies ------------------------------------------------------------------------------


def test_companies_every_action_and_rule():
    records = [
        company(1, "Customer"),
        company(2, "Vendor", name="Dell"),
        company(3, "Competitor"),
        company(4, "Reseller"),
        company(5),
        company(250, "Customer", name="PSA name"),
        company(251, "Prospect"),
        company(252, "Customer"),
        company(253, "Reseller"),
        company(6, "Customer", deleted=True),
    ]
    context = ctx(existing_companies={"hg-250": {"name": "HG name", "hg_type": "supplier"}})
    result = map_companies(records, doc(COMPANIES_DOC), context)
    assert_columns(result)
    d, rows = by_id(result), rows_by_psa(result)
    assert len(result.decisions) == len(records)

    assert (d["1"].outcome, d["1"].rule, d["1"].group) == ("mapped", "type", "Customer")
    assert d["1"].reason == 'company type "Customer" -> client (companies.types)'
    assert rows["1"] == {"tenant_id": T, "id": record_id(T, "companies", "1"), "psa_id": "1",
                         "name": "Company 1", "psa_name": "Company 1", "hg_type": "client", "psa_type": "Customer"}
    assert d["2"].reason == 'company type "Vendor" -> supplier (companies.types)'
    assert rows["2"]["hg_type"] == "supplier"

    assert (d["3"].outcome, d["3"].rule) == ("ignored", "type")
    assert d["3"].reason == 'company type "Competitor" -> ignore (companies.types)'

    assert (d["4"].outcome, d["4"].rule, d["4"].group) == ("pending", "unmapped", "Reseller")
    assert d["4"].reason == 'company type "Reseller" is not mapped'
    assert (d["5"].outcome, d["5"].group, d["5"].reason) == ("pending", "(no type)", "company has no type")

    # map: target id, existing HighGround name, type rule's hg_type wins over the existing one
    assert (d["250"].outcome, d["250"].rule) == ("mapped", "record")
    assert d["250"].reason == "record rule 250: map to hg-250"
    assert rows["250"]["id"] == "hg-250"
    assert rows["250"]["name"] == "HG name" and rows["250"]["psa_name"] == "PSA name"
    assert rows["250"]["hg_type"] == "client"

    assert d["251"].reason == 'record rule 251: import as "Acme Ltd"'
    assert rows["251"]["name"] == "Acme Ltd" and rows["251"]["id"] == record_id(T, "companies", "251")
    assert rows["251"]["hg_type"] == "prospect"

    assert (d["252"].outcome, d["252"].rule, d["252"].reason) == ("ignored", "record", "record rule 252: ignore")
    # record import of a company whose type has no rule: imported, hg_type unknown
    assert d["253"].outcome == "mapped" and rows["253"]["hg_type"] is None
    assert rows["253"]["psa_type"] == "Reseller"

    assert (d["6"].outcome, d["6"].reason) == ("ignored", "deleted in the PSA")
    assert set(rows) == {"1", "2", "250", "251", "253"}


def test_company_map_without_type_rule_keeps_existing_type_and_falls_back_to_psa_name():
    text = 'companies:\n  records:\n    "1": {action: map, to: hg-1}\n    "2": {action: map, to: hg-2}\n'
    context = ctx(existing_companies={"hg-1": {"name": "Existing", "hg_type": "manufacturer"}})
    rows = rows_by_psa(map_companies([company(1, "Other"), company(2)], doc(text), context))
    assert (rows["1"]["name"], rows["1"]["hg_type"]) == ("Existing", "manufacturer")
    assert (rows["2"]["id"], rows["2"]["name"], rows["2"]["hg_type"]) == ("hg-2", "Company 2", None)


def test_company_with_two_types_first_with_a_rule_decides():
    text = "companies:\n  types: {Vendor: supplier, Customer: client}\n"
    result = map_companies(
        [company(1, "Partner", "Customer", "Vendor"), company(2, "Vendor", "Customer")], doc(text), ctx()
    )
    d, rows = by_id(result), rows_by_psa(result)
    assert rows["1"]["hg_type"] == "client" and rows["1"]["psa_type"] == "Customer"
    assert d["1"].reason == 'company type "Customer" -> client (companies.types)' and d["1"].group == "Customer"
    assert rows["2"]["hg_type"] == "supplier" and rows["2"]["psa_type"] == "Vendor"


def test_two_types_ignore_first():
    text = "companies:\n  types: {Competitor: ignore, Customer: client}\n"
    d = by_id(map_companies([company(1, "Competitor", "Customer")], doc(text), ctx()))
    assert d["1"].outcome == "ignored"


def test_deleted_in_the_psa_beats_a_record_rule():
    text = 'companies:\n  records: {"1": {action: import}}\n'
    d = by_id(map_companies([company(1, deleted=True)], doc(text), ctx()))
    assert d["1"].outcome == "ignored"


@pytest.mark.parametrize("auto_import_new", [True, False])
def test_companies_auto_import_new(auto_import_new):
    text = f"""\
        companies:
          auto_import_new: {str(auto_import_new).lower()}
          types: {{Customer: client, Competitor: ignore}}
          records: {{"3": {{action: import}}}}
        """
    records = [company(1, "Customer"), company(2, "Customer"), company(3, "Customer"), company(4, "Competitor")]
    context = ctx(new_psa_ids={"companies": {"2", "3", "4"}})
    d = by_id(map_companies(records, doc(text), context))
    assert d["1"].outcome == "mapped"
    assert d["3"].outcome == "mapped" and d["3"].rule == "record"  # a record rule names it
    assert d["4"].outcome == "ignored"
    if auto_import_new:
        assert d["2"].outcome == "mapped"
    else:
        assert (d["2"].outcome, d["2"].rule, d["2"].group) == ("pending", "new", "Customer")
        assert "companies.auto_import_new is false" in d["2"].reason


def test_no_companies_section_leaves_everything_pending():
    result = map_companies([company(1, "Customer"), company(2)], doc(), ctx())
    assert [d.outcome for d in result.decisions] == ["pending", "pending"] and result.rows == []


def test_two_records_on_one_id_second_is_pending():
    text = 'companies:\n  types: {Customer: client}\n'
    result = map_companies([company(1, "Customer"), company(1, "Customer")], doc(text), ctx())
    assert [d.outcome for d in result.decisions] == ["mapped", "pending"]
    assert "already used by PSA record 1" in result.decisions[1].reason
    assert len(result.rows) == 1


# --- contacts -------------------------------------------------------------------------------


CONTACTS_DOC = COMPANIES_DOC + """\
contacts:
  types: {Billing: import, "End User": import, Vendor: ignore}
  records:
    "9001": {action: ignore}
    "9002": {action: import_as, name: "Jo Van Dyke"}
    "9003": {action: map, to: "hg-contact-1"}
    "9004": {action: import}
"""


def companies_result(text=COMPANIES_DOC, context=None):
    records = [company(1, "Customer"), company(3, "Competitor"), company(4, "Reseller"), company(250, "Customer")]
    return map_companies(records, doc(text), context or ctx())


def test_contacts_every_action_and_rule():
    companies = companies_result()
    records = [
        contact(1, "1", "Billing"),
        contact(2, "1", "Vendor"),
        contact(3, "1", "Partner"),
        contact(4, "1"),
        contact(5, "1", "Partner", "End User"),
        contact(10, "3", "Billing"),
        contact(11, "4", "Billing"),
        contact(12, None, "Billing"),
        contact(13, "999", "Billing"),
        contact(14, "250", "Billing"),
        contact(9001, "1", "Billing"),
        contact(9002, "1", "Partner"),
        contact(9003, "1", "Billing"),
        contact(9004, "1", "Partner"),
        contact(9005, "3", "Billing"),
    ]
    result = map_contacts(records, doc(CONTACTS_DOC), ctx(), companies)
    assert_columns(result)
    d, rows = by_id(result), rows_by_psa(result)
    assert len(result.decisions) == len(records)

    assert (d["1"].outcome, d["1"].rule, d["1"].group) == ("mapped", "type", "Billing")
    assert d["1"].reason == 'contact type "Billing" -> import (contacts.types)'
    assert rows["1"] == {"tenant_id": T, "id": record_id(T, "contacts", "1"), "psa_id": "1",
                         "company_id": record_id(T, "companies", "1"), "first_name": "Ann", "last_name": "Lee",
                         "email": "c1@x.test", "contact_type": "Billing", "invite_status": "not_invited"}
    assert (d["2"].outcome, d["2"].rule) == ("ignored", "type")
    assert (d["3"].outcome, d["3"].rule, d["3"].reason) == ("pending", "unmapped", 'contact type "Partner" is not mapped')
    assert (d["4"].outcome, d["4"].group, d["4"].reason) == ("pending", "(no type)", "contact has no type")
    assert rows["5"]["contact_type"] == "End User"  # first of its types with a rule

    assert (d["10"].outcome, d["10"].rule, d["10"].reason) == ("ignored", "parent", "company 3 is ignored")
    assert (d["11"].outcome, d["11"].rule, d["11"].reason) == ("pending", "parent", "company 4 is pending")
    assert (d["12"].outcome, d["12"].reason) == ("ignored", "contact has no company")
    assert (d["13"].outcome, d["13"].reason) == ("pending", "company 999 is unknown")
    assert rows["14"]["company_id"] == "hg-250"  # the company's HighGround id, also when mapped

    assert (d["9001"].outcome, d["9001"].rule, d["9001"].reason) == ("ignored", "record", "record rule 9001: ignore")
    assert (rows["9002"]["first_name"], rows["9002"]["last_name"]) == ("Jo", "Van Dyke")
    assert d["9002"].rule == "record" and rows["9002"]["contact_type"] == "Partner"
    assert rows["9003"]["id"] == "hg-contact-1" and d["9003"].reason == "record rule 9003: map to hg-contact-1"
    assert d["9004"].outcome == "mapped" and rows["9004"]["id"] == record_id(T, "contacts", "9004")
    assert d["9005"].outcome == "ignored"  # company first, even before a record rule


def test_contacts_map_uses_existing_record_names():
    text = 'contacts:\n  records: {"1": {action: map, to: hg-c}}\n'
    companies = companies_result()
    context = ctx(existing_records={"contacts": {"hg-c": {"name": "Pat Smith"}}})
    rows = rows_by_psa(map_contacts([contact(1, "1")], doc(COMPANIES_DOC + text), context, companies))
    assert (rows["1"]["first_name"], rows["1"]["last_name"]) == ("Pat", "Smith")


def test_contacts_disabled():
    text = COMPANIES_DOC + "contacts:\n  enabled: false\n  types: {Billing: import}\n"
    result = map_contacts([contact(1, "1", "Billing")], doc(text), ctx(), companies_result())
    assert (result.decisions[0].outcome, result.decisions[0].rule) == ("ignored", "disabled")
    assert result.rows == []


@pytest.mark.parametrize("auto_import_new", [True, False])
def test_contacts_auto_import_new(auto_import_new):
    text = COMPANIES_DOC + f"""\
contacts:
  auto_import_new: {str(auto_import_new).lower()}
  types: {{Billing: import}}
  records: {{"3": {{action: import}}}}
"""
    records = [contact(1, "1", "Billing"), contact(2, "1", "Billing"), contact(3, "1", "Billing")]
    context = ctx(new_psa_ids={"contacts": {"2", "3"}})
    d = by_id(map_contacts(records, doc(text), context, companies_result()))
    assert d["1"].outcome == "mapped" and d["3"].outcome == "mapped"
    if auto_import_new:
        assert d["2"].outcome == "mapped"
    else:
        assert (d["2"].outcome, d["2"].rule) == ("pending", "new")


def test_contacts_of_company_pending_because_new():
    text = COMPANIES_DOC.replace("companies:\n", "companies:\n  auto_import_new: false\n") + (
        "contacts:\n  types: {Billing: import}\n"
    )
    context = ctx(new_psa_ids={"companies": {"1"}})
    companies = companies_result(text, context)
    d = by_id(map_contacts([contact(1, "1", "Billing")], doc(text), context, companies))
    assert (d["1"].outcome, d["1"].reason) == ("pending", "company 1 is pending")


# --- products -------------------------------------------------------------------------------


PRODUCTS_DOC = """\
products:
  categories:
    "Hardware/Laptops": {action: map, to: "Hardware/End User Devices"}
    "Hardware": {action: map, to: "Hardware/Peripherals & Accessories"}
    "Software": {action: import}
    "Misc": {action: ignore}
    "Security": {action: import_as, name: "Cyber Security"}
    "Labor/Onsite": {action: import_as, name: "Field Work/Onsite"}
    "Labor/Remote": {action: import_as, name: "Remote Work"}
    "Labor/Bench": {action: import}
    "Voice": {action: import_as, name: "Communications/Hosted Voice"}
  records:
    "SKU-123": {action: map, to: "Security/Email Security"}
    "77": {action: ignore}
    "78": {action: import_as, name: "Renamed"}
    "79": {action: import}
  distributions:
    "MSP-BUNDLE-150":
      - {to: "Security/Endpoint Protection", pct: 40}
      - {to: "Managed Services/Helpdesk & Support", pct: 60}
    "TIE":
      - {to: "Security/Endpoint Protection", pct: 50}
      - {to: "Managed Services/Helpdesk & Support", pct: 50}
"""


def product_result(records, text=PRODUCTS_DOC, **kwargs):
    return map_products(records, doc(text), ctx(**kwargs))


def test_products_category_rules():
    records = [
        product(1, "Hardware", "Laptops"),
        product(2, "Hardware", "Mice"),
        product(3, "Misc", "Stuff"),
        product(4, "Unknown", "Thing"),
        product(5),
    ]
    result = product_result(records)
    assert_columns(result)
    d, rows = by_id(result), rows_by_psa(result)
    # subcategory rule beats category rule
    assert (d["1"].rule, d["1"].group) == ("subcategory", "Hardware/Laptops")
    assert d["1"].reason == 'category "Hardware/Laptops" -> Hardware/End User Devices (products.categories)'
    assert rows["1"]["category_id"] == category_id("Hardware/End User Devices")
    assert rows["1"]["mapping_source"] == "category"
    assert rows["1"] == {"tenant_id": T, "id": record_id(T, "products", "1"), "psa_id": "1", "sku": "SKU-1",
                         "name": "Product 1", "category_id": category_id("Hardware/End User Devices"),
                         "mapping_source": "category", "price": 10.0, "cost": 6.0}
    assert d["2"].rule == "category"  # falls back to the "Hardware" rule
    assert rows["2"]["category_id"] == category_id("Hardware/Peripherals & Accessories")
    assert (d["3"].outcome, d["3"].rule, d["3"].reason) == ("ignored", "category", 'category "Misc" -> ignore (products.categories)')
    assert (d["4"].outcome, d["4"].rule, d["4"].group) == ("pending", "unmapped", "Unknown/Thing")
    assert d["4"].reason == 'product category "Unknown/Thing" is not mapped'
    assert (d["5"].outcome, d["5"].group, d["5"].reason) == ("pending", "(no category)", "product has no category")
    assert result.categories == []


def test_products_custom_categories_import_and_import_as():
    records = [
        product(1, "Software", "Antivirus"),  # import "Software": PSA structure kept
        product(2, "Software", "Antivirus"),
        product(3, "Software"),
        product(4, "Security", "Endpoint"),   # import_as "Cyber Security" -> Cyber Security/Endpoint
        product(5, "Labor", "Onsite"),        # import_as "X/Y" with new parent X
        product(6, "Labor", "Remote"),        # import_as "X" on a subcategory -> top-level X
        product(7, "Labor", "Bench"),         # import "Cat/Sub": custom parent Labor
        product(8, "Voice", "SIP"),           # import_as "X/Y" under global parent X
    ]
    result = product_result(records)
    rows = rows_by_psa(result)
    created = {c["path"]: c for c in result.categories}
    assert list(created) == [  # parents first, once each
        "Software", "Cyber Security", "Field Work", "Remote Work", "Labor",
        "Software/Antivirus", "Cyber Security/Endpoint", "Field Work/Onsite", "Labor/Bench",
        "Communications/Hosted Voice",
    ]
    for path, row in created.items():
        assert row["id"] == category_id(path, T) and row["custom"] is True and row["tenant_id"] == T
    assert created["Field Work/Onsite"]["parent_id"] == category_id("Field Work", T)
    assert created["Field Work/Onsite"]["name"] == "Onsite"
    assert created["Communications/Hosted Voice"]["parent_id"] == category_id("Communications")  # global parent
    assert rows["1"]["category_id"] == rows["2"]["category_id"] == category_id("Software/Antivirus", T)
    assert rows["3"]["category_id"] == category_id("Software", T)
    assert rows["4"]["category_id"] == category_id("Cyber Security/Endpoint", T)
    assert rows["5"]["category_id"] == category_id("Field Work/Onsite", T)
    assert rows["6"]["category_id"] == category_id("Remote Work", T)
    assert rows["8"]["category_id"] == category_id("Communications/Hosted Voice", T)
    assert {r["mapping_source"] for r in rows.values()} == {"category"}
    d = by_id(result)
    assert d["5"].reason == 'category "Labor/Onsite" imported as "Field Work/Onsite" (products.categories)'
    assert d["7"].reason == 'category "Labor/Bench" imported "Labor/Bench" (products.categories)'


def test_custom_categories_are_tenant_scoped():
    records = [product(1, "Software", "Antivirus")]
    a = map_products(records, doc(PRODUCTS_DOC), ctx(tenant_id="a"))
    b = map_products(records, doc(PRODUCTS_DOC), ctx(tenant_id="b"))
    assert a.categories[1]["id"] != b.categories[1]["id"]
    assert a.rows[0]["category_id"] == category_id("Software/Antivirus", "a")
    assert b.rows[0]["category_id"] == category_id("Software/Antivirus", "b")
    assert a.rows[0]["id"] != b.rows[0]["id"]


def test_existing_custom_category_is_reused():
    tree = CategoryTree(custom_paths=["Software/Antivirus"], tenant_id=T)
    result = product_result([product(1, "Software", "Antivirus")], category_tree=tree)
    assert result.rows[0]["category_id"] == category_id("Software/Antivirus", T)
    assert [c["path"] for c in result.categories] == ["Software", "Software/Antivirus"]
    assert "Field Work" not in tree  # the context's tree is not changed


def test_only_categories_that_got_a_product_are_created():
    result = product_result([product(1, "Hardware", "Laptops")])
    assert result.categories == []


def test_product_records_actions():
    records = [
        product(1, "Hardware", "Laptops", sku="SKU-123"),  # record by SKU: map
        product(77, "Hardware", "Laptops"),                # ignore
        product(78, "Hardware", "Laptops"),                # import_as renames, category from next rules
        product(79, "Misc"),                               # import forces past a category ignore
        product(80, "Unknown"),
    ]
    text = PRODUCTS_DOC.replace('    "79": {action: import}\n', '    "79": {action: import}\n    "80": {action: import}\n')
    result = product_result(records, text)
    d, rows = by_id(result), rows_by_psa(result)
    assert (d["1"].rule, d["1"].reason) == ("record", "record rule SKU-123: map to Security/Email Security")
    assert rows["1"]["category_id"] == category_id("Security/Email Security")
    assert rows["1"]["mapping_source"] == "record"
    assert (d["77"].outcome, d["77"].rule) == ("ignored", "record")
    assert rows["78"]["name"] == "Renamed"
    assert rows["78"]["category_id"] == category_id("Hardware/End User Devices")
    assert rows["78"]["mapping_source"] == "category" and d["78"].rule == "record"
    assert d["78"].reason.startswith('record rule 78: import as "Renamed"; category "Hardware/Laptops"')
    assert (d["79"].outcome, d["79"].rule) == ("pending", "unmapped")
    assert d["79"].reason == 'record rule 79: import, but product category "Misc" is not mapped'
    assert d["80"].outcome == "pending"


def test_record_import_uses_auto_import_when_nothing_else():
    text = PRODUCTS_DOC + "  auto_import_new_categories: true\n"
    d = by_id(product_result([product(79, "Misc")], text))
    assert d["79"].outcome == "mapped" and d["79"].rule == "record"


def test_distributions():
    records = [
        product(1, sku="MSP-BUNDLE-150", category="Hardware", subcategory="Laptops"),
        product(2, sku="TIE"),
    ]
    result = product_result(records)
    d, rows = by_id(result), rows_by_psa(result)
    assert d["1"].rule == "distribution" and rows["1"]["mapping_source"] == "distribution"
    assert d["1"].reason == (
        "distribution MSP-BUNDLE-150: Security/Endpoint Protection 40%, Managed Services/Helpdesk & Support 60%"
    )
    assert rows["1"]["category_id"] == category_id("Managed Services/Helpdesk & Support")  # largest share
    assert rows["2"]["category_id"] == category_id("Security/Endpoint Protection")  # first on ties
    pid = record_id(T, "products", "1")
    assert [x for x in result.distributions if x["product_id"] == pid] == [
        {"tenant_id": T, "product_id": pid, "category_id": category_id("Security/Endpoint Protection"), "pct": 40},
        {"tenant_id": T, "product_id": pid, "category_id": category_id("Managed Services/Helpdesk & Support"), "pct": 60},
    ]
    assert len(result.distributions) == 4


def test_distribution_by_psa_id():
    text = PRODUCTS_DOC + '    "5":\n      - {to: "Other/Miscellaneous", pct: 100}\n'
    rows = rows_by_psa(product_result([product(5, "Hardware", "Laptops")], text))
    assert rows["5"]["category_id"] == category_id("Other/Miscellaneous")


def suggest_all(path="Security/SIEM & SOC", confidence=0.9):
    return lambda record: (path, confidence)


SMART = "  smart_mapping: {enabled: true, min_confidence: 0.6}\n"


def test_precedence_record_distribution_category_smart_auto_import():
    text = PRODUCTS_DOC + SMART + "  auto_import_new_categories: true\n"
    # every product is eligible for every later rule; the first applicable one must win
    text = text.replace('    "77": {action: ignore}\n', '    "77": {action: ignore}\n    "TIE": {action: map, to: "Other/Miscellaneous"}\n')
    records = [
        product(1, "Hardware", "Laptops", sku="TIE"),            # record > distribution
        product(2, "Hardware", "Laptops", sku="MSP-BUNDLE-150"),  # distribution > category
        product(3, "Hardware", "Laptops"),                        # category > smart
        product(4, "Unknown", "Thing"),                           # smart > auto import
    ]
    d = by_id(product_result(records, text, suggest=suggest_all()))
    assert [d[k].rule for k in "1234"] == ["record", "distribution", "subcategory", "smart"]
    d = by_id(product_result([product(4, "Unknown", "Thing")], text, suggest=suggest_all(confidence=0.5)))
    assert d["4"].rule == "auto_import"
    d = by_id(product_result([product(4, "Unknown", "Thing")], PRODUCTS_DOC + SMART, suggest=suggest_all(confidence=0.5)))
    assert (d["4"].outcome, d["4"].rule) == ("pending", "unmapped")
    assert "smart mapping suggests Security/SIEM & SOC with confidence 0.50" in d["4"].reason


def test_smart_mapping():
    result = product_result([product(4, "Unknown", "Thing")], PRODUCTS_DOC + SMART, suggest=suggest_all())
    row, decision = result.rows[0], result.decisions[0]
    assert row["mapping_source"] == "smart" and row["category_id"] == category_id("Security/SIEM & SOC")
    assert decision.reason == "smart mapping -> Security/SIEM & SOC (confidence 0.90 >= 0.6)"
    # disabled: the hook is not used
    d = by_id(product_result([product(4, "Unknown", "Thing")], PRODUCTS_DOC, suggest=suggest_all()))
    assert d["4"].outcome == "pending"
    # a suggestion outside the tree is not used
    d = by_id(product_result([product(4, "U")], PRODUCTS_DOC + SMART, suggest=suggest_all("Made/Up")))
    assert d["4"].outcome == "pending"
    # no suggestion
    d = by_id(product_result([product(4, "U")], PRODUCTS_DOC + SMART, suggest=lambda record: None))
    assert d["4"].outcome == "pending"


def test_auto_import_new_categories():
    text = PRODUCTS_DOC + "  auto_import_new_categories: true\n"
    result = product_result([product(1, "Printing", "Toner"), product(2, "Printing"), product(3)], text)
    d, rows = by_id(result), rows_by_psa(result)
    assert (d["1"].rule, rows["1"]["mapping_source"]) == ("auto_import", "category")
    assert rows["1"]["category_id"] == category_id("Printing/Toner", T)
    assert rows["2"]["category_id"] == category_id("Printing", T)
    assert [c["path"] for c in result.categories] == ["Printing", "Printing/Toner"]
    assert d["3"].outcome == "pending"


def test_by_product_mode_ignores_category_rules():
    text = PRODUCTS_DOC + "  mode: by_product\n"
    result = product_result([product(1, "Hardware", "Laptops"), product(2, "Misc"), product(3, sku="SKU-123")], text)
    d = by_id(result)
    assert (d["1"].outcome, d["1"].rule, d["1"].group) == ("pending", "unmapped", "Hardware/Laptops")
    assert d["2"].outcome == "pending"
    assert d["3"].outcome == "mapped" and d["3"].rule == "record"


def test_map_target_missing_from_tree_is_pending():
    text = 'products:\n  categories:\n    X: {action: map, to: "Gone/Away"}\n'
    d = by_id(product_result([product(1, "X")], text))
    assert d["1"].outcome == "pending" and 'category "Gone/Away" does not exist' in d["1"].reason


def test_product_categories_given_as_psa_ids_are_read_as_names():
    psa_categories = [
        {"psa_id": "10", "name": "Hardware", "parent_psa_id": None, "path": "Hardware"},
        {"psa_id": "11", "name": "Laptops", "parent_psa_id": "10", "path": "Hardware/Laptops"},
    ]
    result = map_products([product(1, "10", "11")], doc(PRODUCTS_DOC), ctx(), psa_categories)
    assert result.decisions[0].rule == "subcategory"


# --- members --------------------------------------------------------------------------------


def test_members_actions():
    text = """\
        members:
          records: {"17": {action: ignore}, "18": {action: import_as, name: "Sam J."}, "19": {action: map, to: hg-m}}
        """
    context = ctx(existing_records={"members": {"hg-m": {"name": "HG Member"}}})
    result = map_members([member(1), member(17), member(18), member(19), member(20, name=None)], doc(text), context)
    assert_columns(result)
    d, rows = by_id(result), rows_by_psa(result)
    assert (d["1"].rule, d["1"].outcome) == ("default", "mapped")
    assert rows["1"] == {"tenant_id": T, "id": record_id(T, "members", "1"), "psa_id": "1", "name": "Sam Jones",
                         "email": "m1@msp.test", "invite_status": "not_invited"}
    assert (d["17"].outcome, d["17"].rule, d["17"].reason) == ("ignored", "record", "record rule 17: ignore")
    assert rows["18"]["name"] == "Sam J." and d["18"].rule == "record"
    assert (rows["19"]["id"], rows["19"]["name"]) == ("hg-m", "HG Member")
    assert rows["20"]["name"] == "Sam Jones"  # first + last when the PSA has no name


def test_members_disabled_and_new():
    result = map_members([member(1)], doc("members:\n  enabled: false\n"), ctx())
    assert (result.decisions[0].outcome, result.decisions[0].rule) == ("ignored", "disabled")
    text = 'members:\n  auto_import_new: false\n  records: {"3": {action: import}}\n'
    d = by_id(map_members([member(1), member(2), member(3)], doc(text), ctx(new_psa_ids={"members": {"2", "3"}})))
    assert d["1"].outcome == "mapped"
    assert (d["2"].outcome, d["2"].rule) == ("pending", "new")
    assert d["3"].outcome == "mapped"
    d = by_id(map_members([member(2)], doc("members: {auto_import_new: true}"), ctx(new_psa_ids={"members": {"2"}})))
    assert d["2"].outcome == "mapped"


# --- assets ---------------------------------------------------------------------------------


def test_assets():
    text = COMPANIES_DOC + 'assets:\n  records: {"5": {action: ignore}, "6": {action: import_as, name: "Srv"}}\n'
    companies = companies_result()
    records = [asset(1, "1"), asset(2, "3"), asset(3, "4"), asset(4, None), asset(5, "1"), asset(6, "250"), asset(7, "42")]
    result = map_assets(records, doc(text), ctx(), companies)
    assert_columns(result)
    d, rows = by_id(result), rows_by_psa(result)
    assert (d["1"].outcome, d["1"].rule, d["1"].group) == ("mapped", "default", "Laptop")
    assert rows["1"] == {"tenant_id": T, "id": record_id(T, "assets", "1"), "psa_id": "1",
                         "company_id": record_id(T, "companies", "1"), "name": "Asset 1",
                         "asset_type": "Laptop", "serial_number": "SN1"}
    assert (d["2"].outcome, d["2"].reason) == ("ignored", "company 3 is ignored")
    assert (d["3"].outcome, d["3"].reason) == ("pending", "company 4 is pending")
    assert (d["4"].outcome, d["4"].reason) == ("ignored", "asset has no company")
    assert (d["5"].outcome, d["5"].rule) == ("ignored", "record")
    assert rows["6"]["name"] == "Srv" and rows["6"]["company_id"] == "hg-250"
    assert (d["7"].outcome, d["7"].reason) == ("pending", "company 42 is unknown")


def test_assets_disabled():
    result = map_assets([asset(1, "1")], doc(COMPANIES_DOC + "assets: {enabled: false}\n"), ctx(), companies_result())
    assert (result.decisions[0].outcome, result.decisions[0].rule) == ("ignored", "disabled")


# --- dispatcher, counts, performance --------------------------------------------------------


def test_map_entity_dispatches():
    companies = map_entity("companies", [company(1, "Customer")], doc(COMPANIES_DOC), ctx())
    assets = map_entity("assets", [asset(1, "1")], doc(COMPANIES_DOC), ctx(), companies=companies)
    assert assets.rows[0]["company_id"] == companies.rows[0]["id"]
    assert map_entity("products", [product(1)], doc(), ctx(), categories=[]).counts() == {
        "mapped": 0, "pending": 1, "ignored": 0,
    }
    with pytest.raises(ValueError):
        map_entity("contacts", [], doc(), ctx())
    with pytest.raises(ValueError):
        map_entity("tickets", [], doc(), ctx())


def test_performance_smoke():
    text = COMPANIES_DOC + PRODUCTS_DOC.replace("products:\n", "products:\n  auto_import_new_categories: true\n")
    document = doc(text)
    context = ctx()
    companies = map_companies([company(i, "Customer") for i in range(2000)], document, context)
    assets = [asset(i, str(i % 2500)) for i in range(100_000)]
    started = time.perf_counter()
    result = map_assets(assets, document, context, companies)
    assets_seconds = time.perf_counter() - started
    assert len(result.decisions) == 100_000
    categories = [("Hardware", "Laptops"), ("Software", "Antivirus"), ("Misc", None), ("New", "Thing"), (None, None)]
    products = [product(i, *categories[i % 5]) for i in range(20_000)]
    started = time.perf_counter()
    result = map_products(products, document, context)
    products_seconds = time.perf_counter() - started
    assert len(result.decisions) == 20_000
    print(f"\n100,000 assets mapped in {assets_seconds:.3f}s; 20,000 products in {products_seconds:.3f}s")


def test_same_record_object_twice_is_loaded_once():
    record = member(1)
    result = map_members([record, record], doc(), ctx())
    assert [d.outcome for d in result.decisions] == ["mapped", "pending"] and len(result.rows) == 1


def test_distribution_target_missing_from_tree_is_pending():
    text = 'products:\n  distributions:\n    "1":\n      - {to: "Gone/Away", pct: 100}\n'
    result = product_result([product(1, "Hardware", "Laptops")], text)
    assert result.decisions[0].outcome == "pending" and result.distributions == []
    assert result.decisions[0].reason.endswith('but category "Gone/Away" does not exist')


def test_products_seen_twice_second_is_pending():
    result = product_result([product(1, "Hardware", "Laptops"), product(1, "Hardware", "Laptops")])
    assert [d.outcome for d in result.decisions] == ["mapped", "pending"] and len(result.rows) == 1


def test_results_pickle():
    import pickle

    result = product_result([product(1, "Software", "Antivirus")])
    again = pickle.loads(pickle.dumps(result))
    assert again == result
