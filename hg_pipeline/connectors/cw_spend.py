"""ConnectWise spend: what each client pays, as the spend lines of `entities.NORMALIZED_FIELDS["spend"]`.

Two sources (psa-api-notes 1.6), read within a window of months (`SPEND_MONTHS`, the current
month and the eleven before it, unless the connector is given `spend_until`):

- recurring lines: every *Active* agreement (`GET /finance/agreements`, conditions
  `agreementStatus="Active"`) and its additions (`GET /finance/agreements/{id}/additions`, one
  call per agreement: the N+1 go through the connector's rate-limited HTTP core like every
  other request). An addition gives one line per month of the window in which it is billed:
  `billCustomer` is `Billable`, the month lies between the agreement's start and end months
  (no end with `noEndingDateFlag`), and the addition is effective in it (its `effectiveDate`
  month or later, before its `cancelledDate` month). The amount is the addition's `extPrice`
  (quantity x unit price) per billing cycle, turned into a monthly amount for a non-monthly
  cycle (rounded half up to the cent);
- one-off lines: the product items sold on an invoice (`GET /procurement/products` with an
  `invoice`, no `agreement`, not cancelled; what an agreement invoice bills is already counted
  by the additions), dated by their invoice (`GET /finance/invoices`): quantity x price in the
  invoice's month, when that month is in the window.

The currency is the agreement's or invoice's `currency.currencyCode` when the PSA gives one,
else `DEFAULT_CURRENCY` (the simulated MSP bills in US dollars).

`changed_since` is the nightly's probe (`Connector.spend_changed_since`): one `pageSize=1`
request per list with `conditions=lastUpdated>[since]`, agreements (any status: one that
stopped being Active changes spend too), invoices, product items. The additions cannot be
probed: they are only listed per agreement (`/finance/agreements/{id}/additions`, psa-api-notes
1.6), so an addition edited without its agreement's `lastUpdated` moving is read at the next
whole read (a new month, a full sync, the weekly reconcile). Deletions are not seen either
(ConnectWise lists no deleted records; agreements end or are cancelled, which stamps them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from hg_pipeline.connectors.base import Endpoint, Page
from hg_pipeline.connectors.http import utc_text
from hg_pipeline.connectors.paginators import Request, read
from hg_pipeline.connectors.records import RecordError, id_text, text_value
from hg_pipeline.connectors.spend_lines import DEFAULT_CURRENCY, decimal, line_name, spend_record
from hg_pipeline.connectors.spend_lines import SPEND_MONTHS, window  # noqa: F401 - the connector's window
from hg_pipeline.connectors.spend_lines import month_of as _month

AGREEMENTS_PER_PAGE = 100  # the lines of this many agreements make one page to stage
CYCLE_MONTHS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "semi-annual": 6, "annual": 12, "yearly": 12}

AGREEMENTS = Endpoint("spend", "finance/agreements", paginator="counted_pages")
INVOICES = Endpoint("spend", "finance/invoices", paginator="counted_pages")
PRODUCT_ITEMS = Endpoint("spend", "procurement/products", paginator="counted_pages")


# What the probe asks, in this order (the first change found ends it), and what a record is called.
PROBED = ((AGREEMENTS, "agreement"), (INVOICES, "invoice"), (PRODUCT_ITEMS, "product item"))


def changed_since(connector, since: datetime) -> str | None:
    """None when no agreement, invoice or product item changed after `since` (one request
    each), else the first change found, e.g. "agreement 12 changed after 2026-11-26T02:00:00Z"."""
    op = ">=" if connector.since_inclusive else ">"
    for endpoint, label in PROBED:
        params = {"conditions": f"lastUpdated{op}[{utc_text(since)}]", "fields": "id", "orderBy": "id asc",
                  "pageSize": 1}
        found = connector.fetch(endpoint, Request(connector.api_root + endpoint.path, params)).records
        if found:
            record = found[0]
            psa_id = record.get("id") if isinstance(record, Mapping) else None
            return f"{label} {psa_id} changed after {utc_text(since)}"
    return None


def _currency(record: Mapping) -> str:
    currency = record.get("currency")
    code = currency.get("currencyCode") if isinstance(currency, Mapping) else None
    return code if isinstance(code, str) and len(code) == 3 else DEFAULT_CURRENCY


def billed_months(agreement: Mapping, addition: Mapping, months: list[str]) -> list[str]:
    """The months of `months` in which `addition` of `agreement` is billed (see the module rule)."""
    if addition.get("billCustomer", "Billable") != "Billable":
        return []
    start = _month(agreement.get("startDate"))
    end = None if agreement.get("noEndingDateFlag") else _month(agreement.get("endDate"))
    effective = _month(addition.get("effectiveDate")) or start
    cancelled = _month(addition.get("cancelledDate"))
    return [m for m in months
            if (start is None or start <= m) and (end is None or m <= end)
            and (effective is None or effective <= m) and (cancelled is None or m < cancelled)]


def spend_pages(connector, months: list[str]) -> Iterator[Page]:
    """Pages of line payloads: an agreements page's additions expanded into months, then the
    invoiced product items. Each payload: `id` (the line's psa_id), `month`, and what it comes from."""
    def additions(agreement: Mapping) -> list[dict]:
        agreement_id = id_text(agreement.get("id"), "agreement")
        url = connector.api_root + f"finance/agreements/{agreement_id}/additions"
        request: Request | None = Request(url, {"orderBy": "id asc", "pageSize": connector.page_size})
        found = []
        while request is not None:
            answer = connector.fetch(AGREEMENTS, request)
            found.extend(answer.records)
            request = answer.next
        return found

    def request_of(endpoint: Endpoint, conditions: str | None = None) -> Request:
        params = {"orderBy": "id asc", "pageSize": connector.page_size}
        if conditions:
            params["conditions"] = conditions
        return Request(connector.api_root + endpoint.path, params)

    with ThreadPoolExecutor(max_workers=connector.concurrency, thread_name_prefix="cw-additions") as pool:
        for _, page in read(connector, (AGREEMENTS,), lambda e: request_of(e, 'agreementStatus="Active"')):
            lines = []
            agreements = [a for a in page if isinstance(a, Mapping)]
            for number, (agreement, found) in enumerate(zip(agreements, pool.map(additions, agreements)), 1):
                head = {key: agreement.get(key) for key in ("id", "name", "company", "billingCycle", "currency")}
                for addition in found:
                    if not isinstance(addition, Mapping):
                        continue
                    for month in billed_months(agreement, addition, months):
                        lines.append({"id": f"add-{addition.get('id')}-{month}", "month": month,
                                      "agreement": head, "addition": addition})
                if number % AGREEMENTS_PER_PAGE == 0 or number == len(agreements):
                    # Staged while the pool fetches the next agreements' additions.
                    yield Page(lines)
                    lines = []
    invoices = {}
    for _, page in read(connector, (INVOICES,), request_of):
        for invoice in page:
            if isinstance(invoice, Mapping) and _month(invoice.get("date")) in months:
                invoices[invoice.get("id")] = {key: invoice.get(key) for key in
                                               ("id", "invoiceNumber", "date", "currency")}
    for _, page in read(connector, (PRODUCT_ITEMS,), request_of):
        lines = []
        for item in page:
            if not isinstance(item, Mapping) or item.get("agreement") or item.get("cancelledFlag"):
                continue
            invoice = invoices.get((item.get("invoice") or {}).get("id"))
            if invoice is not None:
                lines.append({"id": f"item-{item.get('id')}", "month": _month(invoice["date"]), "invoice": invoice,
                              "item": item})
        yield Page(lines)


def normalize_line(payload: Mapping) -> dict:
    psa_id, what = line_name(payload)
    if "addition" in payload:
        agreement, addition = payload["agreement"], payload["addition"]
        cycle = (agreement.get("billingCycle") or {}).get("name") or "Monthly"
        per_month = CYCLE_MONTHS.get(str(cycle).replace(" ", "").lower())
        if per_month is None:
            raise RecordError(f"{what}: billing cycle {cycle!r} is not one this pipeline reads")
        if addition.get("extPrice") is not None:
            amount = decimal(addition["extPrice"], what, "extPrice")
        else:
            amount = decimal(addition.get("quantity"), what, "quantity") * decimal(addition.get("unitPrice"),
                                                                                      what, "unitPrice")
        amount /= per_month
        company = agreement.get("company")
        product = addition.get("product")
        currency = _currency(agreement)
        description = text_value(addition, "description", what)
    else:
        item, invoice = payload["item"], payload["invoice"]
        amount = decimal(item.get("quantity"), what, "quantity") * decimal(item.get("price"), what, "price")
        company = item.get("company")
        product = item.get("catalogItem")
        currency = _currency(invoice)
        description = text_value(item, "description", what)
    if not isinstance(company, Mapping):
        raise RecordError(f"{what}: company is missing")
    return spend_record(
        payload, psa_id,
        company_psa_id=id_text(company.get("id"), f"{what} company"),
        product_psa_id=id_text(product.get("id"), f"{what} product") if isinstance(product, Mapping) else None,
        amount=amount, currency=currency, description=description,
    )
