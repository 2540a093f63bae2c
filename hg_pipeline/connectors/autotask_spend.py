"""Autotask spend (psa-api-notes 3.6) as the spend lines of `entities.NORMALIZED_FIELDS["spend"]`,
within the window of `spend_lines.window`:

- the active contracts (`Contracts/query`, `status eq 1`), then their service units
  (`ContractServiceUnits/query`, `contractID in [...]` for up to 500 contracts a query and
  `price gt 0`): no N+1, Autotask's hourly budget is small. A unit is billed every month from its
  `startDate` month to its `endDate` month, within its contract's, at its `price` a month;
- the product is the unit's service: `serviceID` with the prefix "svc-" that the connector
  gives the `Services` it reads as products (services are an entity apart from Products);
- one-off charges (BillingItems, ContractCharges) are not read.

`changed_since` (the nightly's probe, `Connector.spend_changed_since`) cannot ask anything:
neither Contracts nor ContractServiceUnits has a modified-date field (psa-api-notes 3.4 and 3.6;
django-autotask full-syncs Contracts for this reason), so it answers "changed" without a request
and a nightly reads spend whole (one Contracts query and one units query per 500 contracts).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from hg_pipeline.connectors.base import Endpoint, Page
from hg_pipeline.connectors.records import id_text
from hg_pipeline.connectors.spend_lines import decimal, line_name, month_of, months_between, spend_record

CONTRACTS = Endpoint("spend", "Contracts", "next_url", "items")
UNITS = Endpoint("spend", "ContractServiceUnits", "next_url", "items")
BATCH = 500  # contract ids per units query
SERVICE_PREFIX = "svc-"  # the psa_id of a service read as a product (autotask.py)


NO_CHANGE_FIELD = "Autotask's Contracts and ContractServiceUnits have no modified-date field to ask for changes"


def changed_since(since: datetime) -> str:
    """Always a reason to read whole: nothing here can be asked for changes (module docstring)."""
    return NO_CHANGE_FIELD


def spend_pages(connector, months: list[str]) -> Iterator[Page]:
    contracts: dict[object, dict] = {}
    for page in connector._query(CONTRACTS, [{"op": "eq", "field": "status", "value": 1}],
                                 ["id", "companyID", "startDate", "endDate"], 0):
        for contract in page:
            if isinstance(contract, Mapping) and contract.get("id") is not None:
                contracts[contract["id"]] = {key: contract.get(key) for key in ("id", "companyID", "startDate",
                                                                              "endDate")}
    ids = sorted(contracts)
    for start in range(0, len(ids), BATCH):
        conditions = [{"op": "in", "field": "contractID", "value": ids[start:start + BATCH]},
                      {"op": "gt", "field": "price", "value": 0}]
        for page in connector._query(UNITS, conditions, [], 0):
            lines = []
            for unit in page:
                contract = contracts.get(unit.get("contractID")) if isinstance(unit, Mapping) else None
                if contract is None:
                    continue
                first = max(filter(None, (month_of(unit.get("startDate")), month_of(contract["startDate"]))),
                            default=None)
                last = min(filter(None, (month_of(unit.get("endDate")), month_of(contract["endDate"]))), default=None)
                for month in months_between(first, last, months):
                    lines.append({"id": f"csu-{unit.get('id')}-{month}", "month": month, "contract": contract,
                                  "unit": unit})
            yield Page(lines)


def normalize_line(payload: Mapping) -> dict:
    psa_id, what = line_name(payload)
    contract, unit = payload["contract"], payload["unit"]
    service = unit.get("serviceID")
    return spend_record(
        payload, psa_id,
        company_psa_id=id_text(contract.get("companyID"), f"{what} company"),
        product_psa_id=SERVICE_PREFIX + id_text(service, f"{what} service") if service is not None else None,
        amount=decimal(unit.get("price"), what, "price"),
    )
