"""HaloPSA spend (psa-api-notes 2.6) as the spend lines of `entities.NORMALIZED_FIELDS["spend"]`,
within the window of `spend_lines.window`:

- recurring lines: the active recurring invoices (`GET /RecurringInvoice?includelines=true`,
  paged like the other lists; one request per page, no N+1: the lines come with their header).
  A line is billed every month from its `startdate` month to its `enddate` month (no end:
  open), at its `net_amount` (else `qty_order` x `unit_price`) a month. Halo's billing period
  codes are UNCONFIRMED: every line is read as monthly;
- one-off lines: the posted invoices (`GET /Invoice?includelines=true&postedonly=true`) dated in
  the window, each line at its `net_amount` in the invoice's month. An invoice raised from a
  recurring invoice (`recurring_invoice_id` set) is left out: its lines are the recurring ones.

The client is the header's `client_id`, the product the line's `_itemid` (0 or none: a line
without a product, kept apart by the map stage as "not in the catalog").

`changed_since` (the nightly's probe, `Connector.spend_changed_since`) cannot ask anything:
`/RecurringInvoice` and `/Invoice` filter on billing and invoice dates only (the vendor's
OpenAPI document, `../shared/vendor-specs/`); their headers carry a `last_modified` stamp, but
no filter on it exists (psa-api-notes 2.4: full pulls until a filter is proven on a tenant), and
a probe sorted by it would miss a line edited without its header's stamp moving, an invoice
deleted, and a recurring invoice made inactive (the list leaves inactive ones out). So it
answers "changed" without a request and a nightly reads spend whole (paged, no N+1).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from hg_pipeline.connectors.base import Endpoint, Page
from hg_pipeline.connectors.paginators import read
from hg_pipeline.connectors.records import id_text, text_value
from hg_pipeline.connectors.spend_lines import decimal, line_name, month_of, months_between, spend_record

RECURRING = Endpoint("spend", "RecurringInvoice", paginator="numbered_pages", data_selector="invoices")
INVOICES = Endpoint("spend", "Invoice", paginator="numbered_pages", data_selector="invoices")
PARAMS = {"RecurringInvoice": {"includelines": "true"}, "Invoice": {"includelines": "true", "postedonly": "true"}}
_HEADER = ("id", "client_id", "invoicenumber", "invoice_date", "contract_id")


NO_CHANGE_FILTER = "HaloPSA's /RecurringInvoice and /Invoice cannot be asked for changes (no last-update filter)"


def changed_since(since: datetime) -> str:
    """Always a reason to read whole: nothing here can be asked for changes (module docstring)."""
    return NO_CHANGE_FILTER


def spend_pages(connector, months: list[str]) -> Iterator[Page]:
    for endpoint, page in read(connector, (RECURRING, INVOICES), connector._request):
        lines = []
        for header in page:
            if not isinstance(header, Mapping) or not isinstance(header.get("lines"), list):
                continue
            head = {key: header.get(key) for key in _HEADER}
            if endpoint is RECURRING:
                if header.get("inactive"):
                    continue
                for line in header["lines"]:
                    if isinstance(line, Mapping):
                        for month in months_between(month_of(line.get("startdate")), month_of(line.get("enddate")),
                                                    months):
                            lines.append({"id": f"rec-{header.get('id')}-{line.get('id')}-{month}", "month": month,
                                          "header": head, "line": line})
            elif not header.get("recurring_invoice_id") and month_of(header.get("invoice_date")) in months:
                for line in header["lines"]:
                    if isinstance(line, Mapping):
                        lines.append({"id": f"inv-{header.get('id')}-{line.get('id')}",
                                      "month": month_of(header["invoice_date"]), "header": head, "line": line})
        yield Page(lines)


def normalize_line(payload: Mapping) -> dict:
    psa_id, what = line_name(payload)
    header, line = payload["header"], payload["line"]
    if line.get("net_amount") is not None:
        amount = decimal(line["net_amount"], what, "net_amount")
    else:
        amount = decimal(line.get("qty_order"), what, "qty_order") * decimal(line.get("unit_price"), what,
                                                                              "unit_price")
    item = line.get("_itemid")
    return spend_record(
        payload, psa_id,
        company_psa_id=id_text(header.get("client_id"), f"{what} client"),
        product_psa_id=id_text(item, f"{what} item") if item not in (None, 0, "0") else None,
        amount=amount,
        description=text_value(line, "item_shortdescription", what),
    )
