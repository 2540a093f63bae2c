"""Deterministic, realistic ConnectWise Manage datasets for the simulators and tests.

`generate("small" | "large", seed)` returns a `Dataset`: lists of JSON dicts shaped exactly
as ConnectWise Manage returns them (camelCase fields, `{id, name}` references, an `_info`
block with `lastUpdated` / `dateEntered`). The same seed always gives the same data; the
clock is never read: every timestamp lies before `BASE_TIME` (2026-01-01T00:00:00Z).

The word lists below are the whole "catalog" of names; `large` composes more of them.
A dataset name may carry a scale factor, `large-x10`: every count of `large` times 10 (1.6
million records, for `hg-pipeline bench --scale 10`); `scaled_name("large", 10)` spells it.
"""

from __future__ import annotations

import gc
import random
import re
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone

from hg_pipeline.simulators.billing import generate_billing

BASE_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)
_BASE_TS = int(BASE_TIME.timestamp())
_HISTORY_SECONDS = 3 * 365 * 86400  # records were entered during the three years before BASE_TIME

ENDPOINT_KINDS = (
    "company_types", "companies", "contact_types", "contacts", "categories", "subcategories",
    "catalog", "members", "configuration_types", "configurations",
)
# What the MSP bills (simulators/billing.py): kept apart so that `counts()` stays the PSA's
# record lists the sync has always read.
BILLING_KINDS = ("agreements", "agreement_additions", "invoices", "product_items")

SIZES = {
    "small": {"companies": 40, "contacts": 150, "catalog": 60, "members": 12, "configurations": 120},
    "large": {"companies": 2000, "contacts": 40000, "catalog": 20000, "members": 300, "configurations": 100000},
}
SCALE_MARK = "-x"  # "large-x10": the sizes of "large", each times 10


def scaled_name(name: str, scale: int = 1) -> str:
    """The dataset name of `name` scaled `scale` times ("large", 10 -> "large-x10")."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1, not {scale}")
    return name if scale == 1 else f"{name}{SCALE_MARK}{scale}"


def dataset_sizes(name: str) -> dict[str, int]:
    """The record counts of a dataset name ("small", "large", "large-x10"...)."""
    base, mark, factor = name.partition(SCALE_MARK)
    if base not in SIZES or (mark and not (factor.isdigit() and int(factor) >= 1)):
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(SIZES)} "
                         f"(or one scaled, e.g. large{SCALE_MARK}10)")
    scale = int(factor) if mark else 1
    return {kind: count * scale for kind, count in SIZES[base].items()}

# --- companies -------------------------------------------------------------------------

# (name, type names) -- the MSP's own book of business, as it looks in a real PSA.
SMALL_COMPANIES = (
    ("Northwind Dental Group", ("Customer",)),
    ("Harbor Logistics Ltd", ("Customer",)),
    ("Cedar Ridge Family Medicine", ("Customer",)),
    ("Bluewater Accounting LLP", ("Customer",)),
    ("Summit Peak Engineering", ("Customer",)),
    ("Riverside Veterinary Clinic", ("Customer",)),
    ("Oakmont Law Partners", ("Customer",)),
    ("Granite State Credit Union", ("Customer",)),
    ("Maple Street Bakery Co.", ("Customer",)),
    ("Lakeshore Property Management", ("Customer",)),
    ("Pinecrest Academy", ("Customer",)),
    ("Silverline Manufacturing Inc", ("Customer",)),
    ("Coastal Realty Group", ("Customer",)),
    ("Evergreen Senior Living", ("Customer",)),
    ("Redwood Architecture Studio", ("Customer",)),
    ("Ironbridge Construction LLC", ("Customer",)),
    ("Meadowbrook Pediatrics", ("Customer",)),
    ("Atlas Freight Brokers", ("Customer",)),
    ("Brightside Insurance Agency", ("Customer",)),
    ("Falcon Aerospace Components", ("Customer",)),
    ("Willow Creek Winery", ("Customer",)),
    ("Keystone Title & Escrow", ("Customer",)),
    ("Horizon Physical Therapy", ("Customer",)),
    ("Copperfield Hotel Group", ("Customer",)),
    ("Sterling Wealth Advisors", ("Customer", "Partner")),
    ("Valley Orthodontics", ("Customer",)),
    ("Beacon Hill Nonprofit Alliance", ("Customer",)),
    ("Trident Marine Services", ("Customer",)),
    ("Juniper Home Health", ("Prospect",)),
    ("Crescent City Chiropractic", ("Prospect",)),
    ("Stonegate Capital Partners", ("Prospect",)),
    ("Prairie Wind Farms", ("Prospect",)),
    ("Orchard Valley School District", ("Prospect", "Customer")),
    ("Ingram Micro", ("Vendor",)),
    ("Pax8", ("Vendor", "Partner")),
    ("TD SYNNEX", ("Vendor",)),
    ("Dell Technologies", ("Vendor",)),
    ("Datto", ("Vendor", "Partner")),
    ("Cloudwise Consulting", ("Partner",)),
    ("Rival Tech Solutions", ("Competitor",)),
)

COMPANY_TYPES = (  # (name, defaultFlag, vendorFlag)
    ("Customer", True, False),
    ("Prospect", False, False),
    ("Vendor", False, True),
    ("Partner", False, False),
    ("Competitor", False, False),
)

COMPANY_STATUSES = ((1, "Active"), (2, "Inactive"), (3, "Not-Approved"))

COMPANY_NAME_FIRST = (
    "Northwind", "Harbor", "Cedar Ridge", "Bluewater", "Summit", "Riverside", "Oakmont", "Granite",
    "Maple Street", "Lakeshore", "Pinecrest", "Silverline", "Coastal", "Evergreen", "Redwood",
    "Ironbridge", "Meadowbrook", "Atlas", "Brightside", "Falcon", "Willow Creek", "Keystone",
    "Horizon", "Copperfield", "Sterling", "Valley", "Beacon Hill", "Trident", "Juniper", "Crescent",
    "Stonegate", "Prairie", "Orchard", "Aspen", "Birchwood", "Canyon", "Driftwood", "Eastgate",
    "Foxglove", "Golden Gate", "Highland", "Ivy Lane", "Jasper", "Kingsley", "Lighthouse",
    "Millbrook", "Newport", "Old Mill", "Parkside", "Quarry", "Rosewood", "Seaside", "Timberline",
    "Union Square", "Vista", "Westfield", "Yellowstone", "Zenith", "Bayview", "Clearwater",
)
COMPANY_NAME_TRADE = (
    "Dental", "Logistics", "Family Medicine", "Accounting", "Engineering", "Veterinary",
    "Law", "Credit Union", "Bakery", "Property Management", "Academy", "Manufacturing",
    "Realty", "Senior Living", "Architecture", "Construction", "Pediatrics", "Freight",
    "Insurance", "Aerospace", "Winery", "Title & Escrow", "Physical Therapy", "Hotel",
    "Wealth Advisors", "Orthodontics", "Marine Services", "Home Health", "Chiropractic",
    "Capital", "Farms", "Plumbing", "Auto Group", "Pharmacy", "Brewing", "Dermatology",
    "Surveying", "Staffing", "Printing", "HVAC", "Landscaping", "Eye Care", "Foods",
)
COMPANY_NAME_SUFFIX = ("Group", "LLC", "Ltd", "Inc", "Partners", "Co.", "Associates", "Clinic", "Services", "")

CITIES = (  # (city, state, zip prefix)
    ("Portland", "OR", "972"), ("Seattle", "WA", "981"), ("Boise", "ID", "837"), ("Denver", "CO", "802"),
    ("Austin", "TX", "787"), ("Tampa", "FL", "336"), ("Raleigh", "NC", "276"), ("Columbus", "OH", "432"),
    ("Madison", "WI", "537"), ("Burlington", "VT", "054"), ("Manchester", "NH", "031"), ("Omaha", "NE", "681"),
)
STREETS = ("Main St", "Oak Ave", "Harbor Blvd", "Commerce Dr", "Market St", "Industrial Pkwy", "Elm St", "Lake Rd")

# --- contacts --------------------------------------------------------------------------

CONTACT_TYPES = ("Billing", "End User", "Decision Maker", "Vendor Contact")

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "William",
    "Mia", "Benjamin", "Charlotte", "Lucas", "Amelia", "Henry", "Harper", "Alexander", "Evelyn",
    "Daniel", "Abigail", "Michael", "Emily", "Ethan", "Elizabeth", "Jacob", "Sofia", "Logan",
    "Avery", "Jackson", "Ella", "Sebastian", "Scarlett", "Aiden", "Grace", "Matthew", "Chloe",
    "Samuel", "Victoria", "David", "Riley", "Joseph", "Aria", "Carter", "Lily", "Owen", "Priya",
    "Wei", "Carlos", "Fatima", "Hiroshi", "Aisha", "Mateo", "Ingrid", "Dmitri", "Nadia",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres",
    "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell",
    "Mitchell", "Carter", "Roberts", "Patel", "Chen", "Okafor", "Kowalski", "Lindqvist", "O'Brien",
)
CONTACT_TITLES = (
    "Office Manager", "Practice Manager", "Controller", "CFO", "CEO", "Owner", "Operations Director",
    "IT Coordinator", "Receptionist", "Accounts Payable", "Dispatcher", "Paralegal", "Nurse",
    "Sales Representative", "Account Manager", "Project Engineer", "HR Generalist", "Bookkeeper",
)

# --- procurement -----------------------------------------------------------------------

# category -> subcategories (an empty tuple: the category has none)
CATEGORIES = (
    ("Hardware", ("Laptops", "Desktops", "Servers", "Networking", "Accessories")),
    ("Software", ("Microsoft 365", "Operating Systems", "Line of Business")),
    ("Security", ("Endpoint", "Email", "Firewall")),
    ("Backup", ()),
    ("Cloud Services", ()),
    ("Telecom", ()),
    ("Labor", ("Project", "Support")),
    ("Misc", ()),
)

PRODUCT_TYPES = ((1, "Hardware"), (2, "Software"), (3, "Service"), (4, "Labor"), (5, "Agreement"), (6, "Bundle"))

MANUFACTURERS = (
    "Dell", "HP", "Lenovo", "Microsoft", "Cisco", "Ubiquiti", "Fortinet", "SonicWall", "SentinelOne",
    "Datto", "Proofpoint", "Mimecast", "Veeam", "Synology", "APC", "Logitech", "Apple", "Intuit",
    "Barracuda", "Meraki", "Acronis", "RingCentral", "Huntress", "Sophos",
)

# (identifier, description, category, subcategory or None, product type, productClass,
#  price, cost, recurring, manufacturer or None)
SMALL_PRODUCTS = (
    ("M365-BP", "Microsoft 365 Business Premium", "Software", "Microsoft 365", "Software", "NonInventory", 22.00, 18.50, True, "Microsoft"),
    ("M365-BS", "Microsoft 365 Business Standard", "Software", "Microsoft 365", "Software", "NonInventory", 12.50, 10.20, True, "Microsoft"),
    ("M365-BB", "Microsoft 365 Business Basic", "Software", "Microsoft 365", "Software", "NonInventory", 6.00, 4.80, True, "Microsoft"),
    ("M365-E3", "Microsoft 365 E3", "Software", "Microsoft 365", "Software", "NonInventory", 36.00, 30.60, True, "Microsoft"),
    ("EXO-P1", "Exchange Online (Plan 1)", "Software", "Microsoft 365", "Software", "NonInventory", 4.00, 3.40, True, "Microsoft"),
    ("WIN11-PRO", "Windows 11 Pro Upgrade", "Software", "Operating Systems", "Software", "NonInventory", 199.00, 165.00, False, "Microsoft"),
    ("WS2022-STD", "Windows Server 2022 Standard 16-Core", "Software", "Operating Systems", "Software", "NonInventory", 1069.00, 899.00, False, "Microsoft"),
    ("WS2022-CAL", "Windows Server 2022 User CAL", "Software", "Operating Systems", "Software", "NonInventory", 48.00, 39.00, False, "Microsoft"),
    ("QB-ENT", "QuickBooks Enterprise Gold", "Software", "Line of Business", "Software", "NonInventory", 1922.00, 1700.00, True, "Intuit"),
    ("DENTRIX-G7", "Dentrix G7 Workstation License", "Software", "Line of Business", "Software", "NonInventory", 850.00, 720.00, False, None),
    ("ADOBE-CC", "Adobe Creative Cloud All Apps", "Software", "Line of Business", "Software", "NonInventory", 89.99, 76.00, True, None),
    ("LAT5440", "Dell Latitude 5440", "Hardware", "Laptops", "Hardware", "Inventory", 1249.00, 1049.00, False, "Dell"),
    ("LAT7440", "Dell Latitude 7440", "Hardware", "Laptops", "Hardware", "Inventory", 1689.00, 1420.00, False, "Dell"),
    ("EB840G10", "HP EliteBook 840 G10", "Hardware", "Laptops", "Hardware", "Inventory", 1399.00, 1180.00, False, "HP"),
    ("TP-T14-G4", "Lenovo ThinkPad T14 Gen 4", "Hardware", "Laptops", "Hardware", "Inventory", 1329.00, 1115.00, False, "Lenovo"),
    ("MBA-M3-13", "Apple MacBook Air 13 M3", "Hardware", "Laptops", "Hardware", "Inventory", 1299.00, 1160.00, False, "Apple"),
    ("OPT7010", "Dell OptiPlex 7010 Micro", "Hardware", "Desktops", "Hardware", "Inventory", 899.00, 745.00, False, "Dell"),
    ("ED800G9", "HP Elite Mini 800 G9", "Hardware", "Desktops", "Hardware", "Inventory", 949.00, 790.00, False, "HP"),
    ("TC-M70Q", "Lenovo ThinkCentre M70q Gen 4", "Hardware", "Desktops", "Hardware", "Inventory", 829.00, 690.00, False, "Lenovo"),
    ("PE-R660", "Dell PowerEdge R660 Server", "Hardware", "Servers", "Hardware", "Inventory", 8900.00, 7450.00, False, "Dell"),
    ("PE-T360", "Dell PowerEdge T360 Tower Server", "Hardware", "Servers", "Hardware", "Inventory", 4200.00, 3520.00, False, "Dell"),
    ("DL380-G11", "HPE ProLiant DL380 Gen11", "Hardware", "Servers", "Hardware", "Inventory", 9600.00, 8100.00, False, "HP"),
    ("USW-24-POE", "UniFi Switch 24 PoE", "Hardware", "Networking", "Hardware", "Inventory", 449.00, 379.00, False, "Ubiquiti"),
    ("U6-PRO", "UniFi U6 Pro Access Point", "Hardware", "Networking", "Hardware", "Inventory", 179.00, 149.00, False, "Ubiquiti"),
    ("MS120-24P", "Cisco Meraki MS120-24P Switch", "Hardware", "Networking", "Hardware", "Inventory", 2100.00, 1760.00, False, "Meraki"),
    ("FG-60F", "FortiGate 60F Firewall", "Hardware", "Networking", "Hardware", "Inventory", 695.00, 580.00, False, "Fortinet"),
    ("WD22TB4", "Dell Thunderbolt Dock WD22TB4", "Hardware", "Accessories", "Hardware", "Inventory", 289.00, 239.00, False, "Dell"),
    ("P2723D", "Dell 27 Monitor P2723D", "Hardware", "Accessories", "Hardware", "Inventory", 329.00, 270.00, False, "Dell"),
    ("MX-KEYS-COMBO", "Logitech MX Keys Combo for Business", "Hardware", "Accessories", "Hardware", "Inventory", 169.00, 139.00, False, "Logitech"),
    ("UPS-1500", "APC Smart-UPS 1500VA", "Hardware", "Accessories", "Hardware", "Inventory", 749.00, 620.00, False, "APC"),
    ("S1-COMPLETE", "SentinelOne Complete", "Security", "Endpoint", "Service", "Service", 8.50, 5.25, True, "SentinelOne"),
    ("HUNTRESS-EDR", "Huntress Managed EDR", "Security", "Endpoint", "Service", "Service", 6.00, 3.50, True, "Huntress"),
    ("SOPHOS-INTX", "Sophos Intercept X Advanced", "Security", "Endpoint", "Service", "Service", 5.50, 3.60, True, "Sophos"),
    ("PP-ESS-BUS", "Proofpoint Essentials Business", "Security", "Email", "Service", "Service", 4.50, 2.90, True, "Proofpoint"),
    ("MIMECAST-EP", "Mimecast Email Protect", "Security", "Email", "Service", "Service", 4.00, 2.60, True, "Mimecast"),
    ("FW-MGD-MO", "Managed Firewall - Monthly", "Security", "Firewall", "Service", "Service", 125.00, 45.00, True, "Fortinet"),
    ("FG-UTP-60F-1Y", "FortiGate 60F UTP Bundle 1 Year", "Security", "Firewall", "Software", "NonInventory", 540.00, 450.00, False, "Fortinet"),
    ("SW-TZ370-CGSS", "SonicWall TZ370 Total Secure 1 Year", "Security", "Firewall", "Software", "NonInventory", 995.00, 830.00, False, "SonicWall"),
    ("SIRIS3-2TB", "Datto SIRIS 3 Appliance", "Backup", None, "Hardware", "Inventory", 3400.00, 2800.00, False, "Datto"),
    ("SIRIS-CLOUD-1Y", "Datto SIRIS Cloud Retention 1 Year", "Backup", None, "Service", "Service", 180.00, 110.00, True, "Datto"),
    ("VEEAM-M365", "Veeam Backup for Microsoft 365", "Backup", None, "Software", "NonInventory", 2.50, 1.60, True, "Veeam"),
    ("DATTO-SAAS", "Datto SaaS Protection", "Backup", None, "Service", "Service", 3.00, 1.90, True, "Datto"),
    ("ACRONIS-CP", "Acronis Cyber Protect Cloud", "Backup", None, "Service", "Service", 4.25, 2.70, True, "Acronis"),
    ("AZURE-CONS", "Azure Consumption", "Cloud Services", None, "Service", "Service", 1.00, 0.92, True, "Microsoft"),
    ("AVD-DESKTOP", "Azure Virtual Desktop - Per User", "Cloud Services", None, "Service", "Service", 45.00, 28.00, True, "Microsoft"),
    ("HOSTED-VM-STD", "Hosted Virtual Server - Standard", "Cloud Services", None, "Service", "Service", 150.00, 70.00, True, None),
    ("DOMAIN-REG", "Domain Registration - Annual", "Cloud Services", None, "Service", "Service", 25.00, 12.00, True, None),
    ("RC-MVP-STD", "RingCentral MVP Standard", "Telecom", None, "Service", "Service", 27.99, 20.00, True, "RingCentral"),
    ("SIP-TRUNK", "SIP Trunk - Per Channel", "Telecom", None, "Service", "Service", 18.00, 9.00, True, None),
    ("POLY-VVX450", "Poly VVX 450 Desk Phone", "Telecom", None, "Hardware", "Inventory", 289.00, 230.00, False, None),
    ("LAB-SUPPORT-HR", "Hourly Support Labor", "Labor", "Support", "Labor", "Service", 165.00, 55.00, False, None),
    ("LAB-AFTERHRS", "After Hours Emergency Support", "Labor", "Support", "Labor", "Service", 247.50, 75.00, False, None),
    ("LAB-ONSITE", "Onsite Support Visit", "Labor", "Support", "Labor", "Service", 195.00, 60.00, False, None),
    ("LAB-PROJECT-HR", "Project Engineering Labor", "Labor", "Project", "Labor", "Service", 185.00, 65.00, False, None),
    ("LAB-M365-MIG", "Microsoft 365 Migration - Per Mailbox", "Labor", "Project", "Labor", "Service", 75.00, 25.00, False, None),
    ("LAB-NETWORK-INST", "Network Installation Project", "Labor", "Project", "Labor", "Service", 2500.00, 900.00, False, None),
    ("MSP-BUNDLE-150", "MSP-BUNDLE-150 (Managed Security Bundle)", "Security", None, "Bundle", "Bundle", 150.00, 62.00, True, None),
    ("MSP-ESSENTIALS", "Managed Services Essentials - Per User", "Misc", None, "Agreement", "Agreement", 95.00, 35.00, True, None),
    ("SHIPPING", "Shipping & Handling", "Misc", None, "Service", "NonInventory", 25.00, 18.00, False, None),
    ("RECYCLE-FEE", "Hardware Recycling Fee", "Misc", None, "Service", "NonInventory", 35.00, 15.00, False, None),
)

# For `large`: per subcategory (or category), (manufacturer, product lines, variants,
# price range). Names come out as e.g. "Dell Latitude 5450 i7/32GB/1TB".
PRODUCT_TEMPLATES = {
    ("Hardware", "Laptops"): (
        (("Dell", "Latitude"), ("HP", "EliteBook"), ("Lenovo", "ThinkPad T"), ("Lenovo", "ThinkPad X1 Carbon Gen"), ("HP", "ProBook")),
        ("i5/16GB/256GB", "i5/16GB/512GB", "i7/16GB/512GB", "i7/32GB/1TB", "Ultra 5/16GB/512GB"),
        (800, 2600),
    ),
    ("Hardware", "Desktops"): (
        (("Dell", "OptiPlex"), ("HP", "Elite Mini"), ("Lenovo", "ThinkCentre M"), ("HP", "ProDesk")),
        ("Micro i5/8GB/256GB", "SFF i5/16GB/512GB", "Tower i7/16GB/512GB", "Micro i7/32GB/1TB"),
        (600, 1800),
    ),
    ("Hardware", "Servers"): (
        (("Dell", "PowerEdge R"), ("Dell", "PowerEdge T"), ("HP", "ProLiant DL"), ("Lenovo", "ThinkSystem SR")),
        ("Xeon Silver/64GB", "Xeon Silver/128GB", "Xeon Gold/256GB", "EPYC/128GB"),
        (3500, 18000),
    ),
    ("Hardware", "Networking"): (
        (("Ubiquiti", "UniFi Switch"), ("Meraki", "MS"), ("Cisco", "Catalyst"), ("Ubiquiti", "UniFi AP U"), ("Fortinet", "FortiSwitch")),
        ("8-Port PoE", "24-Port PoE", "48-Port PoE", "Wi-Fi 6", "Wi-Fi 6E"),
        (120, 4500),
    ),
    ("Hardware", "Accessories"): (
        (("Dell", "Monitor P"), ("Logitech", "MX"), ("APC", "Smart-UPS"), ("Dell", "Dock WD"), ("HP", "USB-C Dock G")),
        ("Standard", "Pro", "Business Edition", "2-Pack"),
        (40, 900),
    ),
    ("Software", "Microsoft 365"): (
        (("Microsoft", "Microsoft 365"), ("Microsoft", "Office 365"), ("Microsoft", "Exchange Online")),
        ("Business Basic", "Business Standard", "Business Premium", "E3", "E5", "F3", "Apps for Business"),
        (4, 60),
    ),
    ("Software", "Operating Systems"): (
        (("Microsoft", "Windows Server"), ("Microsoft", "Windows 11"), ("Microsoft", "Windows Server CAL")),
        ("Standard", "Datacenter", "Pro", "Enterprise", "User", "Device"),
        (40, 6000),
    ),
    ("Software", "Line of Business"): (
        (("Intuit", "QuickBooks"), ("Microsoft", "Dynamics 365"), (None, "Adobe Acrobat"), (None, "AutoCAD LT"), (None, "Dentrix")),
        ("Annual", "Monthly", "Workstation", "Server", "Pro"),
        (15, 2500),
    ),
    ("Security", "Endpoint"): (
        (("SentinelOne", "SentinelOne"), ("Huntress", "Huntress"), ("Sophos", "Intercept X"), ("Microsoft", "Defender for Business")),
        ("Core", "Control", "Complete", "Managed EDR", "Advanced"),
        (3, 15),
    ),
    ("Security", "Email"): (
        (("Proofpoint", "Essentials"), ("Mimecast", "Email Security"), ("Barracuda", "Email Protection")),
        ("Beginner", "Business", "Advanced", "Professional"),
        (2, 9),
    ),
    ("Security", "Firewall"): (
        (("Fortinet", "FortiGate"), ("SonicWall", "TZ"), ("Meraki", "MX"), ("Sophos", "XGS")),
        ("Appliance", "UTP 1 Year", "UTP 3 Year", "Managed - Monthly", "HA Pair"),
        (90, 5200),
    ),
    ("Backup", None): (
        (("Datto", "SIRIS"), ("Datto", "ALTO"), ("Veeam", "Backup & Replication"), ("Acronis", "Cyber Protect"), ("Synology", "DiskStation")),
        ("1TB", "2TB", "4TB", "8TB", "Cloud Retention 1 Year", "Per Workload"),
        (3, 9000),
    ),
    ("Cloud Services", None): (
        ((None, "Hosted Virtual Server"), ("Microsoft", "Azure Virtual Desktop"), ("Microsoft", "Azure"), (None, "Managed Web Hosting")),
        ("Standard", "Performance", "Per User", "Consumption", "Reserved 1 Year"),
        (1, 600),
    ),
    ("Telecom", None): (
        (("RingCentral", "MVP"), (None, "SIP Trunk"), (None, "Business Fiber"), (None, "Poly Desk Phone")),
        ("Core", "Advanced", "Ultra", "Per Channel", "100 Mbps", "1 Gbps"),
        (10, 900),
    ),
    ("Labor", "Support"): (
        ((None, "Remote Support"), (None, "Onsite Support"), (None, "After Hours Support"), (None, "Block Hours")),
        ("Tier 1", "Tier 2", "Tier 3", "Emergency", "Prepaid 10"),
        (95, 2500),
    ),
    ("Labor", "Project"): (
        ((None, "Project Engineering"), (None, "Migration Services"), (None, "Network Installation"), (None, "vCIO Consulting")),
        ("Hourly", "Fixed Fee", "Per Mailbox", "Per Device", "Phase 1"),
        (60, 15000),
    ),
    ("Misc", None): (
        ((None, "Shipping & Handling"), (None, "Recycling Fee"), (None, "Restocking Fee"), (None, "Travel")),
        ("Standard", "Expedited", "Per Device", "Per Trip"),
        (10, 300),
    ),
}

# --- members ---------------------------------------------------------------------------

MSP_EMAIL_DOMAIN = "bluepeak-it.com"  # the simulated MSP, "BluePeak IT Services"
MSP_NAME = "BluePeak IT Services"
MEMBER_TITLES = (
    "Service Desk Technician", "Senior Service Desk Technician", "Network Engineer", "Systems Engineer",
    "Field Technician", "Service Manager", "vCIO", "Project Manager", "Security Analyst",
    "Account Manager", "Dispatcher", "Owner",
)

# --- configurations --------------------------------------------------------------------

# (type name, name code, manufacturer, model numbers)
CONFIGURATION_TYPES = (
    ("Laptop", "LT", "Dell", ("Latitude 5440", "Latitude 7440", "Latitude 5540")),
    ("Desktop", "DT", "HP", ("Elite Mini 800 G9", "ProDesk 400 G9")),
    ("Server", "SRV", "Dell", ("PowerEdge R660", "PowerEdge T360", "PowerEdge R750")),
    ("Firewall", "FW", "Fortinet", ("FortiGate 60F", "FortiGate 100F")),
    ("Switch", "SW", "Ubiquiti", ("USW-24-POE", "USW-48-POE", "USW-Pro-24")),
    ("Wireless Access Point", "AP", "Ubiquiti", ("U6-Pro", "U6-LR", "U7-Pro")),
    ("Printer", "PRN", "HP", ("LaserJet Pro M404", "Color LaserJet M479")),
    ("Virtual Machine", "VM", "Microsoft", ("Hyper-V Gen2", "Azure B2ms")),
    ("Mobile Device", "MD", "Apple", ("iPhone 15", "iPad 10th Gen")),
    ("Backup Appliance", "BDR", "Datto", ("SIRIS S4 2TB", "ALTO 3")),
)
# Relative frequency of each configuration type (same order as above).
CONFIGURATION_TYPE_WEIGHTS = (40, 22, 4, 3, 5, 7, 5, 6, 6, 2)
CONFIGURATION_STATUSES = ((1, "Active"), (2, "Inactive"), (3, "Retired"))


@dataclass
class Dataset:
    """ConnectWise-shaped records by endpoint kind; each list is sorted by `id`.

    The lists are live: tests may add, remove or edit records between syncs (the
    simulator reads them on every request).
    """

    name: str
    seed: int
    company_types: list[dict] = field(default_factory=list)
    companies: list[dict] = field(default_factory=list)
    contact_types: list[dict] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)
    categories: list[dict] = field(default_factory=list)
    subcategories: list[dict] = field(default_factory=list)
    catalog: list[dict] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    configuration_types: list[dict] = field(default_factory=list)
    configurations: list[dict] = field(default_factory=list)
    agreements: list[dict] = field(default_factory=list)
    agreement_additions: list[dict] = field(default_factory=list)  # each with its `agreementId`
    invoices: list[dict] = field(default_factory=list)
    product_items: list[dict] = field(default_factory=list)

    def records(self, kind: str) -> list[dict]:
        if kind not in ENDPOINT_KINDS and kind not in BILLING_KINDS:
            raise KeyError(f"unknown endpoint kind {kind!r}")
        return getattr(self, kind)

    def counts(self) -> dict[str, int]:
        return {f.name: len(getattr(self, f.name)) for f in fields(self) if f.name in ENDPOINT_KINDS}

    def next_id(self, kind: str) -> int:
        """An id not used yet in `kind` (for tests adding records)."""
        return max((r["id"] for r in self.records(kind)), default=0) + 1


def iso(moment: datetime | int | float) -> str:
    """ConnectWise timestamp text ("2026-01-01T00:00:00Z") of a datetime or epoch seconds."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        moment = moment.timestamp()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(moment)))


def info(date_entered: datetime | int, last_updated: datetime | int) -> dict[str, str]:
    """An `_info` block as ConnectWise returns it."""
    return {"lastUpdated": iso(last_updated), "dateEntered": iso(date_entered)}


_DAY_TEXT: dict[int, str] = {}


def _fast_iso(ts: int) -> str:
    day, second = divmod(ts, 86400)
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
    return f"{text}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"


class _Generator:
    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.size = dataset_sizes(name)
        self.rng = random.Random(seed)
        self.dataset = Dataset(name=name, seed=seed)

    def stamps(self) -> dict[str, str]:
        random_ = self.rng.random
        entered = _BASE_TS - 86400 - int(random_() * (_HISTORY_SECONDS - 86400))
        updated = entered + int((_BASE_TS - entered) * random_() ** 2)  # most edits are old
        return {"lastUpdated": _fast_iso(updated), "dateEntered": _fast_iso(entered)}

    def pick(self, seq):
        """rng.choice, several times faster (this matters for `large`)."""
        return seq[int(self.rng.random() * len(seq))]

    def run(self) -> Dataset:
        self.reference_lists()
        self.companies()
        self.contacts()
        self.catalog()
        self.members()
        self.configurations()
        generate_billing(self.dataset, self.dataset.seed)  # its own random draws, after all of the above
        return self.dataset

    # -- reference lists ---------------------------------------------------------------

    def reference_lists(self) -> None:
        ds = self.dataset
        ds.company_types = [
            {"id": i, "name": name, "defaultFlag": default, "vendorFlag": vendor, "serviceAlertFlag": False,
             "_info": self.stamps()}
            for i, (name, default, vendor) in enumerate(COMPANY_TYPES, start=1)
        ]
        ds.contact_types = [
            {"id": i, "description": name, "defaultFlag": i == 2, "_info": self.stamps()}
            for i, name in enumerate(CONTACT_TYPES, start=1)
        ]
        sub_id = 0
        for cat_id, (cat_name, subs) in enumerate(CATEGORIES, start=1):
            ds.categories.append({"id": cat_id, "name": cat_name, "inactiveFlag": False, "defaultFlag": False,
                                  "_info": self.stamps()})
            for sub_name in subs:
                sub_id += 1
                ds.subcategories.append({
                    "id": sub_id, "name": sub_name, "category": {"id": cat_id, "name": cat_name},
                    "inactiveFlag": False, "_info": self.stamps(),
                })
        ds.configuration_types = [
            {"id": i, "name": name, "inactiveFlag": False, "systemFlag": False, "_info": self.stamps()}
            for i, (name, _code, _maker, _models) in enumerate(CONFIGURATION_TYPES, start=1)
        ]

    # -- companies -----------------------------------------------------------------------

    def company_names(self) -> list[tuple[str, tuple[str, ...]]]:
        count = self.size["companies"]
        if count <= len(SMALL_COMPANIES):
            return list(SMALL_COMPANIES[:count])
        rng = self.rng
        names = list(SMALL_COMPANIES)
        seen = {n for n, _ in names}
        combos = len(COMPANY_NAME_FIRST) * len(COMPANY_NAME_TRADE) * len(COMPANY_NAME_SUFFIX)
        if count > combos:
            raise ValueError("not enough name combinations")
        type_pool = (("Customer",),) * 14 + (("Prospect",),) * 3 + (("Vendor",), ("Partner",), ("Customer", "Partner"), ("Competitor",))
        while len(names) < count:
            name = " ".join(filter(None, (rng.choice(COMPANY_NAME_FIRST), rng.choice(COMPANY_NAME_TRADE),
                                          rng.choice(COMPANY_NAME_SUFFIX))))
            if name not in seen:
                seen.add(name)
                names.append((name, rng.choice(type_pool)))
        return names

    def companies(self) -> None:
        rng = self.rng
        types_by_name = {t["name"]: {"id": t["id"], "name": t["name"]} for t in self.dataset.company_types}
        identifiers: set[str] = set()
        for company_id, (name, type_names) in enumerate(self.company_names(), start=1):
            words = re.sub(r"[^A-Za-z0-9 ]", "", name).split()
            identifier = "".join(words[:2])[:25]
            base, n = identifier, 1
            while identifier in identifiers:
                n += 1
                identifier = f"{base[:22]}{n}"
            identifiers.add(identifier)
            city, state, zip_prefix = rng.choice(CITIES)
            status_id, status_name = COMPANY_STATUSES[0] if rng.random() < 0.93 else COMPANY_STATUSES[1]
            self.dataset.companies.append({
                "id": company_id,
                "identifier": identifier,
                "name": name,
                "status": {"id": status_id, "name": status_name},
                "types": [dict(types_by_name[t]) for t in type_names],
                "addressLine1": f"{rng.randrange(10, 9999)} {rng.choice(STREETS)}",
                "city": city,
                "state": state,
                "zip": f"{zip_prefix}{rng.randrange(10, 99)}",
                "country": {"id": 1, "name": "United States"},
                "phoneNumber": f"{rng.randrange(200, 989)}555{rng.randrange(1000, 9999)}",
                "website": f"www.{identifier.lower()}.com",
                "isVendorFlag": "Vendor" in type_names,
                "leadFlag": "Prospect" in type_names,
                "deletedFlag": False,
                "_info": self.stamps(),
            })

    # -- contacts ------------------------------------------------------------------------

    def contacts(self) -> None:
        rng = self.rng
        ds = self.dataset
        companies = ds.companies
        contact_types = [{"id": t["id"], "name": t["description"]} for t in ds.contact_types]
        used_emails: set[str] = set()
        pick = self.pick
        for contact_id in range(1, self.size["contacts"] + 1):
            company = pick(companies)
            first, last = pick(FIRST_NAMES), pick(LAST_NAMES)
            domain = f"{company['identifier'].lower()}.com"
            local = f"{first.lower()}.{re.sub(r'[^a-z]', '', last.lower())}"
            email, n = f"{local}@{domain}", 1
            while email in used_emails:
                n += 1
                email = f"{local}{n}@{domain}"
            used_emails.add(email)
            roll = rng.random()
            if roll < 0.15:
                types = []
            elif roll < 0.9:
                types = [dict(pick(contact_types))]
            else:
                types = [dict(t) for t in rng.sample(contact_types, 2)]
            items = []
            if rng.random() < 0.95:
                items.append({"id": len(items) + 1, "type": {"id": 1, "name": "Email"}, "value": email,
                              "defaultFlag": True, "communicationType": "Email"})
            if rng.random() < 0.7:
                items.append({"id": len(items) + 1, "type": {"id": 2, "name": "Direct"},
                              "value": f"{200 + int(rng.random() * 789)}555{1000 + int(rng.random() * 8999)}",
                              "defaultFlag": True, "communicationType": "Phone"})
            ds.contacts.append({
                "id": contact_id,
                "firstName": first,
                "lastName": last,
                "company": {"id": company["id"], "identifier": company["identifier"], "name": company["name"]},
                "types": types,
                "inactiveFlag": rng.random() < 0.05,
                "title": pick(CONTACT_TITLES),
                "communicationItems": items,
                "defaultFlag": False,
                "_info": self.stamps(),
            })

    # -- catalog -------------------------------------------------------------------------

    def catalog(self) -> None:
        ds = self.dataset
        cats = {c["name"]: {"id": c["id"], "name": c["name"]} for c in ds.categories}
        subs = {(s["category"]["name"], s["name"]): {"id": s["id"], "name": s["name"]} for s in ds.subcategories}
        types = {name: {"id": i, "name": name} for i, name in PRODUCT_TYPES}
        makers = {name: {"id": i, "name": name} for i, name in enumerate(MANUFACTURERS, start=1)}
        rows = list(SMALL_PRODUCTS[: self.size["catalog"]])
        rows += self.composed_products(self.size["catalog"] - len(rows))
        for product_id, (sku, description, cat, sub, ptype, pclass, price, cost, recurring, maker) in enumerate(rows, start=1):
            item = {
                "id": product_id,
                "identifier": sku,
                "description": description,
                "customerDescription": description,
                "category": dict(cats[cat]),
                "type": dict(types[ptype]),
                "productClass": pclass,
                "price": price,
                "cost": cost,
                "recurringFlag": recurring,
                "taxableFlag": pclass == "Inventory",
                "inactiveFlag": self.rng.random() < 0.04,
                "_info": self.stamps(),
            }
            if sub is not None:
                item["subcategory"] = dict(subs[(cat, sub)])
            if maker is not None:
                item["manufacturer"] = dict(makers[maker])
            ds.catalog.append(item)

    def composed_products(self, count: int) -> list[tuple]:
        rng = self.rng
        keys = list(PRODUCT_TEMPLATES)
        rows = []
        for n in range(count):
            cat, sub = keys[rng.randrange(len(keys))]
            lines, variants, (low, high) = PRODUCT_TEMPLATES[(cat, sub)]
            maker, line = rng.choice(lines)
            variant = rng.choice(variants)
            model = rng.randrange(1, 99) * 10
            description = f"{maker + ' ' if maker and not line.startswith(maker) else ''}{line} {model} {variant}"[:60]
            sku = f"{re.sub(r'[^A-Z0-9]', '', line.upper())[:8]}-{model}-{n + 1:05d}"
            price = round(rng.uniform(low, high), 2)
            cost = round(price * rng.uniform(0.55, 0.9), 2)
            if cat == "Labor":
                ptype, pclass = "Labor", "Service"
            elif cat == "Hardware" or ((cat, sub) == ("Backup", None) and rng.random() < 0.3):
                ptype, pclass = "Hardware", "Inventory"
            elif cat in ("Software",):
                ptype, pclass = "Software", "NonInventory"
            else:
                ptype, pclass = "Service", "Service"
            recurring = (pclass == "Service" and cat != "Labor") or (cat, sub) == ("Software", "Microsoft 365")
            if rng.random() < 0.1:
                sub = None  # some items are only filed under their category
            rows.append((sku, description, cat, sub, ptype, pclass, price, cost, recurring, maker))
        return rows

    # -- members -------------------------------------------------------------------------

    def members(self) -> None:
        rng = self.rng
        identifiers: set[str] = set()
        for member_id in range(1, self.size["members"] + 1):
            if member_id == self.size["members"]:
                first, last, title, license_class = "API", "Integration", "API Member", "A"
            else:
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                title = MEMBER_TITLES[(member_id - 1) % len(MEMBER_TITLES)]
                license_class = "F" if rng.random() < 0.95 else "X"
            base = (first[0] + re.sub(r"[^a-z]", "", last.lower())).lower()
            identifier, n = base, 1
            while identifier in identifiers:
                n += 1
                identifier = f"{base}{n}"
            identifiers.add(identifier)
            email = f"{identifier}@{MSP_EMAIL_DOMAIN}"
            self.dataset.members.append({
                "id": member_id,
                "identifier": identifier,
                "firstName": first,
                "lastName": last,
                "primaryEmail": email,
                "officeEmail": email,
                "title": title,
                "inactiveFlag": rng.random() < 0.08,
                "licenseClass": license_class,
                "defaultEmail": "Office",
                "defaultPhone": "Office",
                "agreementInvoicingDisplayOptions": "RemainOnInvoicingScreen",
                "invoicingDisplayOptions": "RemainOnInvoicingScreen",
                "invoiceScreenDefaultTabFormat": "ShowInvoicingTab",
                "_info": self.stamps(),
            })

    # -- configurations ------------------------------------------------------------------

    def configurations(self) -> None:
        rng = self.rng
        ds = self.dataset
        companies = ds.companies
        config_types = ds.configuration_types
        makers = {name: {"id": i, "name": name} for i, name in enumerate(MANUFACTURERS, start=1)}
        prefixes = {c["id"]: re.sub(r"[^A-Z]", "", c["identifier"].upper())[:3].ljust(3, "X") for c in companies}
        numbers: dict[tuple[int, str], int] = {}
        type_indexes = rng.choices(range(len(CONFIGURATION_TYPES)), weights=CONFIGURATION_TYPE_WEIGHTS,
                                   k=self.size["configurations"])
        pick = self.pick
        for config_id, type_index in enumerate(type_indexes, start=1):
            company = pick(companies)
            type_name, code, maker, models = CONFIGURATION_TYPES[type_index]
            key = (company["id"], code)
            numbers[key] = number = numbers.get(key, 0) + 1
            active = rng.random() < 0.9
            status_id, status_name = CONFIGURATION_STATUSES[0] if active else pick(CONFIGURATION_STATUSES[1:])
            ds.configurations.append({
                "id": config_id,
                "name": f"{prefixes[company['id']]}-{code}-{number:03d}",
                "company": {"id": company["id"], "identifier": company["identifier"], "name": company["name"]},
                "type": {"id": config_types[type_index]["id"], "name": type_name},
                "status": {"id": status_id, "name": status_name},
                "activeFlag": active,
                "serialNumber": f"{rng.getrandbits(50):013X}"[-10:],
                "manufacturer": dict(makers[maker]),
                "modelNumber": pick(models),
                "_info": self.stamps(),
            })


def generate(dataset: str = "small", seed: int = 1) -> Dataset:
    """A fresh `Dataset` ("small", "large" or a scaled one such as "large-x10"), identical for
    identical arguments."""
    generator = _Generator(dataset, seed)
    # Hundreds of thousands of small dicts: the cyclic GC would rescan them over and
    # over (it triples the time of `large`); they hold no cycles, so pause it.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return generator.run()
    finally:
        if gc_was_enabled:
            gc.enable()
