"""The simulated MSP's billing (simulators/billing.py) in Autotask's shapes (psa-api-notes 3.6).

- `Contracts`: one per ConnectWise agreement, `status` 1 (active) when the agreement is Active,
  else 0; a contract without an end ends on 2099-12-31 (Autotask contracts always have one);
- `ContractServiceUnits`: one per addition, spanning the months it is billed (`startDate`: the
  later of the contract start and the addition's effective date; `endDate`: the last day billed),
  `units` its quantity, `price` its monthly amount (0 for an addition the client is not billed for),
  `serviceID` the id of its product's service;
- `Services`: the recurring catalog, an entity apart from `Products` as in Autotask: one service
  per recurring catalog item (its name, description, prices; Autotask services have no product
  category), with ids of their own, `SERVICE_ID_BASE` + the item's id (never a product's id).

One-off sales are not served (Autotask's BillingItems carry no product).
"""

from __future__ import annotations

from hg_pipeline.simulators.halo_billing import _line_end

NO_END = "2099-12-31T00:00:00Z"
SERVICE_ID_BASE = 30_000_000  # services' own id range, far above any dataset's product ids
RECURRING_BILLING_CODE = 29_682_801  # the allocation code ("billing code") every service bills under


def service_id(product_id: int) -> int:
    return SERVICE_ID_BASE + product_id


def service(record: dict) -> dict:
    """The service of a recurring catalog item (fields of Autotask's Services entity)."""
    info = record.get("_info") or {}
    return {
        "id": service_id(record["id"]),
        "name": record.get("description"),
        "description": record.get("customerDescription"),
        "invoiceDescription": record.get("description"),
        "unitPrice": record.get("price"),
        "unitCost": record.get("cost"),
        "markupRate": None,
        "periodType": 3,  # monthly, as the products' periodType here
        "billingCodeID": RECURRING_BILLING_CODE,
        "serviceLevelAgreementID": None,
        "vendorCompanyID": None,
        "isActive": not record.get("inactiveFlag"),
        "createDate": info.get("dateEntered"),
        "creatorResourceID": None,
        "lastModifiedDate": info.get("lastUpdated"),
        "updateResourceID": None,
        "userDefinedFields": [],
    }


def _at(text: str | None) -> str | None:
    return f"{text[:10]}T00:00:00Z" if text else None


def contract(agreement: dict) -> dict:
    return {
        "id": agreement["id"],
        "companyID": (agreement.get("company") or {}).get("id"),
        "contractName": agreement.get("name"),
        "contractNumber": f"C-{agreement['id']:05d}",
        "contractType": 7,  # recurring service
        "contractPeriodType": "m",
        "status": 1 if agreement.get("agreementStatus") == "Active" else 0,
        "startDate": _at(agreement.get("startDate")),
        "endDate": NO_END if agreement.get("noEndingDateFlag") or not agreement.get("endDate")
        else _at(agreement["endDate"]),
        "estimatedRevenue": agreement.get("billAmount"),
    }


def service_unit(addition: dict, agreements: dict[int, dict]) -> dict:
    agreement = agreements.get(addition["agreementId"]) or {}
    start = max(agreement.get("startDate") or "", addition.get("effectiveDate") or "")
    billed = addition.get("billCustomer") == "Billable"
    product_id = (addition.get("product") or {}).get("id")
    return {
        "id": addition["id"],
        "contractID": addition["agreementId"],
        "contractServiceID": addition["id"],
        "serviceID": None if product_id is None else service_id(product_id),
        "units": addition.get("quantity"),
        "price": addition.get("extPrice") if billed else 0.0,
        "cost": addition.get("unitCost"),
        "startDate": _at(start) if start else None,
        "endDate": _at(_line_end(agreement, addition)) if agreement else None,
        "vendorCompanyID": None,
    }
