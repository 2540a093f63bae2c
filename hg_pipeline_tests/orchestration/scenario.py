"""The mapping the end-to-end tests use, and what it means."""

# A mapping whose outcome a test can predict from the dataset alone: every company
# and contact type has a rule, so the first type of a record decides.
COMPANY_TYPES = {"Customer": "client", "Prospect": "prospect", "Vendor": "supplier", "Partner": "supplier"}
CONTACT_TYPES_IMPORTED = ("Billing", "End User", "Decision Maker")
TEST_MAPPING = """\
companies:
  auto_import_new: true
  types: {Customer: client, Prospect: prospect, Vendor: supplier, Partner: supplier, Competitor: ignore}
contacts:
  enabled: true
  types: {Billing: import, "End User": import, "Decision Maker": import, "Vendor Contact": ignore}
products:
  mode: by_category
  auto_import_new_categories: true
  categories:
    "Hardware/Laptops": {action: map, to: "Hardware/End User Devices"}
    "Misc": {action: ignore}
members: {enabled: true}
assets: {enabled: true}
"""
