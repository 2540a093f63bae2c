"""The simulated MSP's billing (simulators/billing.py) in HaloPSA's shapes (psa-api-notes 2.6).

- `/RecurringInvoice` (`InvoiceHeader`): one per ConnectWise agreement (inactive unless the
  agreement is Active), its lines (`InvoiceDetail`, with `includelines=true`) the billable
  additions, each with `startdate` (the later of the agreement start and the addition's
  effective date) and `enddate` (the last day billed: before the cancellation, or the
  agreement's end month), billed monthly;
- `/Invoice` (`InvoiceHeader`, posted): one per ConnectWise invoice, its lines the product items
  sold on it (not cancelled).
"""

from __future__ import annotations

import calendar
from decimal import Decimal


def _day(text: str | None) -> str | None:
    return f"{text[:10]}T00:00:00" if text else None


def _last_day(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}-{calendar.monthrange(year, month)[1]:02d}T00:00:00"


def _month_before(text: str) -> tuple[int, int]:
    year, month = int(text[:4]), int(text[5:7])
    return (year, month - 1) if month > 1 else (year - 1, 12)


def _line_end(agreement: dict, addition: dict) -> str | None:
    ends = []
    if addition.get("cancelledDate"):
        ends.append(_last_day(*_month_before(addition["cancelledDate"])))
    if not agreement.get("noEndingDateFlag") and agreement.get("endDate"):
        ends.append(_last_day(int(agreement["endDate"][:4]), int(agreement["endDate"][5:7])))
    return min(ends) if ends else None


def recurring_invoice(agreement: dict, additions: list[dict], lines: bool) -> dict:
    company = agreement.get("company") or {}
    header = {
        "id": agreement["id"],
        "client_id": company.get("id"),
        "client_name": company.get("name"),
        "contract_id": agreement["id"],
        "invoicenumber": f"RI-{agreement['id']:05d}",
        "inactive": agreement.get("agreementStatus") != "Active",
        "total": agreement.get("billAmount"),
        "last_modified": (agreement.get("_info") or {}).get("lastUpdated"),
    }
    if lines:
        header["lines"] = [{
            "id": a["id"],
            "_itemid": a["product"]["id"],
            "item_code": a["product"].get("identifier"),
            "item_shortdescription": a.get("description"),
            "qty_order": a["quantity"],
            "unit_price": a["unitPrice"],
            "net_amount": a["extPrice"],
            "billingperiod": 1,  # monthly
            "startdate": _day(max(agreement["startDate"], a.get("effectiveDate") or agreement["startDate"])),
            "enddate": _line_end(agreement, a),
            "contract_id": agreement["id"],
        } for a in additions if a.get("billCustomer") == "Billable"]
    return header


def invoice(record: dict, items: list[dict], lines: bool) -> dict:
    company = record.get("company") or {}
    header = {
        "id": record["id"],
        "invoicenumber": record.get("invoiceNumber"),
        "invoice_date": _day(record.get("date")),
        "client_id": company.get("id"),
        "client_name": company.get("name"),
        "posted": True,
        "recurring_invoice_id": 0,
        "total": record.get("total"),
        "last_modified": (record.get("_info") or {}).get("lastUpdated"),
    }
    if lines:
        header["lines"] = [{
            "id": i["id"],
            "_itemid": i["catalogItem"]["id"],
            "item_code": i["catalogItem"].get("identifier"),
            "item_shortdescription": i.get("description"),
            "qty_order": i["quantity"],
            "unit_price": i["price"],
            "net_amount": float(Decimal(str(i["price"])) * i["quantity"]),
        } for i in items if not i.get("cancelledFlag") and not i.get("agreement")]
    return header
