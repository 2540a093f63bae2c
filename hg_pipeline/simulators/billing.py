"""What the simulated MSP bills its clients: ConnectWise agreements with their additions
(recurring lines), invoices and the product items sold on them (one-off lines).

Drawn from a random generator of its own (seeded from the dataset's seed), after every other
list: the other lists keep exactly the records they had before billing existed.

- agreements (`GET /finance/agreements`): one or two per active client company (first type
  "Customer"), billed monthly; most run without an end, some ended or were cancelled;
- additions (`GET /finance/agreements/{id}/additions`): recurring catalog items with a quantity,
  a unit price and `extPrice` = quantity x unit price, each effective from a month and sometimes
  cancelled; most are billable, a few `DoNotBill` / `NoCharge`;
- invoices (`GET /finance/invoices`) and product items (`GET /procurement/products`): one-off
  sales (hardware, labour) invoiced during 2025 and 2026, each item pointing at its invoice.

Dates are first days of months (`YYYY-MM-01T00:00:00Z`); agreements start before BASE_TIME,
invoices may be dated after it (they are what the MSP will bill). Every `_info` stamp lies before
BASE_TIME like the rest of the dataset: an invoice dated later was entered in December 2025 (a
stamp ahead of the clock would look changed to every change filter, the nightly's spend probe too).
"""

from __future__ import annotations

import random
from decimal import Decimal

AGREEMENT_TYPES = ((1, "Managed Services"), (2, "Security Services"), (3, "Cloud & Licensing"))
BILL_CUSTOMER = ("Billable",) * 18 + ("DoNotBill", "NoCharge")


def month_text(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}-01T00:00:00Z"


def add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


LAST_ENTERED = month_text(2025, 12)  # the last month before BASE_TIME (datasets.py)


def entered(year: int, month: int) -> dict:
    """The `_info` of a record dated in that month: entered then, or in LAST_ENTERED if later."""
    stamp = min(month_text(year, month), LAST_ENTERED)
    return {"lastUpdated": stamp, "dateEntered": stamp}


def generate_billing(dataset, seed: int) -> None:
    """Fill the dataset's agreements, agreement_additions, invoices and product_items."""
    rng = random.Random(f"billing-{seed}")
    catalog = [p for p in dataset.catalog if not p.get("inactiveFlag")]
    recurring = [p for p in catalog if p.get("recurringFlag")]
    one_off = [p for p in catalog if not p.get("recurringFlag") and p["productClass"] in ("Inventory", "Service")]
    bundle = [p for p in recurring if p["productClass"] in ("Bundle", "Agreement")]
    clients = [c for c in dataset.companies
               if c["types"] and c["types"][0]["name"] == "Customer" and c["status"]["name"] == "Active"]
    addition_id = item_id = 0
    for company in clients:
        ref = {"id": company["id"], "identifier": company["identifier"], "name": company["name"]}
        for _ in range(1 if rng.random() < 0.7 else 2):
            agreement_id = len(dataset.agreements) + 1
            type_id, type_name = rng.choice(AGREEMENT_TYPES)
            start = add_months(2023, 1, rng.randrange(0, 34))  # 2023-01 .. 2025-10
            roll = rng.random()
            status, end = "Active", None
            if roll < 0.12:  # a fixed term: ended, or still running
                end = add_months(*start, rng.choice((12, 24, 36)) - 1)
                status = "Active" if end >= (2026, 1) else "Expired"
            elif roll < 0.18:
                status, end = "Cancelled", add_months(*start, rng.randrange(3, 12))
            additions = []
            picks = rng.sample(recurring, rng.randrange(2, 5))
            if bundle and rng.random() < 0.4:
                picks.append(rng.choice(bundle))
            for product in picks:
                addition_id += 1
                # seats for per-user items, one or two of anything dearer
                quantity = rng.randrange(1, 40) if product["price"] < 60 else rng.randrange(1, 3)
                unit_price = Decimal(str(product["price"])) * Decimal(rng.choice(("1.00", "1.00", "0.95", "0.90")))
                unit_price = unit_price.quantize(Decimal("0.01"))
                effective = add_months(*start, rng.choice((0, 0, 0, 2, 5, 14)))
                cancelled = add_months(*effective, rng.randrange(2, 20)) if rng.random() < 0.12 else None
                additions.append({
                    "id": addition_id,
                    "agreementId": agreement_id,
                    "product": {"id": product["id"], "identifier": product["identifier"],
                                "description": product["description"]},
                    "description": product["description"],
                    "quantity": quantity,
                    "unitPrice": float(unit_price),
                    "unitCost": product["cost"],
                    "extPrice": float(unit_price * quantity),
                    "billCustomer": rng.choice(BILL_CUSTOMER),
                    "effectiveDate": month_text(*effective),
                    "cancelledDate": month_text(*cancelled) if cancelled else None,
                    "agreementStatus": status,
                    "_info": {"lastUpdated": month_text(*start), "dateEntered": month_text(*start)},
                })
            dataset.agreement_additions.extend(additions)
            dataset.agreements.append({
                "id": agreement_id,
                "name": f"{company['identifier']} - {type_name}",
                "type": {"id": type_id, "name": type_name},
                "company": dict(ref),
                "agreementStatus": status,
                "cancelledFlag": status == "Cancelled",
                "startDate": month_text(*start),
                "endDate": month_text(*end) if end else None,
                "noEndingDateFlag": end is None,
                "billingCycle": {"id": 1, "name": "Monthly"},
                "billAmount": float(sum(Decimal(str(a["extPrice"])) for a in additions
                                        if a["billCustomer"] == "Billable")),
                "_info": {"lastUpdated": month_text(*start), "dateEntered": month_text(*start)},
            })
        if not one_off:
            continue
        for _ in range(rng.randrange(0, 3)):  # one-off sales invoiced in 2025 or 2026
            invoice_id = len(dataset.invoices) + 1
            year, month = add_months(2025, 1, rng.randrange(0, 24))
            items = []
            for product in rng.sample(one_off, rng.randrange(1, 3)):
                item_id += 1
                quantity = rng.randrange(1, 6)
                items.append({
                    "id": item_id,
                    "catalogItem": {"id": product["id"], "identifier": product["identifier"]},
                    "description": product["description"],
                    "company": dict(ref),
                    "invoice": {"id": invoice_id, "identifier": f"INV-{invoice_id:05d}"},
                    "agreement": None,
                    "quantity": quantity,
                    "price": product["price"],
                    "cost": product["cost"],
                    "cancelledFlag": rng.random() < 0.05,
                    "_info": entered(year, month),
                })
            dataset.product_items.extend(items)
            dataset.invoices.append({
                "id": invoice_id,
                "invoiceNumber": f"INV-{invoice_id:05d}",
                "type": "Standard",
                "company": dict(ref),
                "date": month_text(year, month),
                "status": {"id": 1, "name": "Sent"},
                "total": float(sum(Decimal(str(i["price"])) * i["quantity"] for i in items if not i["cancelledFlag"])),
                "_info": entered(year, month),
            })
