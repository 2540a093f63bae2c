"""An Autotask PSA REST API simulator: a real HTTP server on 127.0.0.1.

It serves the same `Dataset` as the ConnectWise simulator (same companies, contacts, products,
members and assets, same ids), translated per request into Autotask's shapes (field names of
`../shared/psa-api-notes.md` table 3.5). Tests edit the ConnectWise-shaped records and see the
edits here (a changed `_info.lastUpdated` moves `lastTrackedModifiedDateTime`...).

- zone lookup: `GET /atservicesrest/v1.0/zoneInformation?user=NAME` (no auth) answers
  `{"url": "<base>/zone5/atservicesrest/", "webUrl": ...}` for the configured user (500 for
  any other): every other call lives under that zone URL, `ZONE_PREFIX` + `/v1.0`;
- auth: headers `ApiIntegrationCode`, `UserName`, `Secret` on every zone call (401 otherwise);
- `POST /{Entity}/query` with `{"filter": [...], "MaxRecords": <=500, "IncludeFields": [...]}`
  (also `GET /{Entity}/query?search=<json>`): ops `eq noteq gt gte lt lte in notIn beginsWith
  endsWith contains exist notExist`, groups `{"op": "and"|"or", "items": [...]}`, datetimes
  compared as instants; records sorted by id; `{"items": [...], "pageDetails": {"count",
  "requestCount", "prevPageUrl", "nextPageUrl"}}`, `nextPageUrl` null on the last page (POST the
  same body to it, or GET it after a GET query: it carries that query's `search`; it pages by id,
  so edits during a sweep move nothing);
- `.../query/count` answers `{"queryCount": n}`; `GET /{Entity}/entityInformation/fields` lists
  the fields, the picklists `companyType` (Companies), `productCategory` (Products) and
  `configurationItemType` (ConfigurationItems) with `picklistValues`;
- entities: Companies, Contacts, Products, Resources, ConfigurationItems, and the billing's
  Services (the recurring catalog items, ids of their own), Contracts and ContractServiceUnits
  (`autotask_billing.py`); modified-date fields `lastActivityDate` /
  `lastTrackedModifiedDateTime` (Companies), `lastModifiedDate` (Contacts, Services),
  `lastModifiedTime` (ConfigurationItems), none on Products and Resources;
- limits: at most `thread_limit` (3) requests at once per (integration code, entity), beyond
  it `thread_limit_status` (500, as Autotask may) with "Thread Threshold Exceeded"; and
  `rate_limit = (10000, 3600)` by default, beyond it 429 with `Retry-After`;
- errors are `{"errors": ["..."]}`.

Vendor gaps this simulator fills (see docs/decisions.md): Autotask has no contact type, so a
contact's first ConnectWise type is the user-defined field "Contact Type"; no product
subcategory, so it is the UDF "Product Subcategory"; a company removed from the dataset is gone
(Autotask itself only deactivates) and one with `deletedFlag` has `isActive` false.
"""

from __future__ import annotations

import hmac
import json
import re
import sys
import threading
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

from hg_pipeline.simulators.base import (
    ApiError,
    RawJson,
    SimulatorBase,
    checked_credentials,
    json_list,
    run_simulator,
)
from hg_pipeline.simulators import autotask_billing
from hg_pipeline.simulators.datasets import Dataset

ZONE_LOOKUP = "/atservicesrest/v1.0/zoneInformation"
ZONE_PREFIX = "/zone5/atservicesrest"
API_PREFIX = ZONE_PREFIX + "/v1.0"
MAX_RECORDS = 500

# Accepted without --credential. Demo values only; they protect nothing.
DEMO_CREDENTIALS: dict[str, str] = {
    "username": "api-user@bluepeak-it.com",
    "secret": "demo-secret",
    "integration_code": "HGDEMOINTEGRATIONCODE000000",
}
CREDENTIAL_KEYS = ("username", "secret", "integration_code")

ENTITIES: dict[str, str] = {  # Autotask entity -> Dataset kind
    "Companies": "companies",
    "Contacts": "contacts",
    "Products": "catalog",
    "Resources": "members",
    "ConfigurationItems": "configurations",
    "Services": "services",  # billing: autotask_billing.py (derived from the recurring catalog)
    "Contracts": "agreements",
    "ContractServiceUnits": "agreement_additions",
}


def _stamp(record: dict, key: str) -> str | None:
    return (record.get("_info") or {}).get(key)


def _udf(name: str, value) -> dict:
    return {"name": name, "value": value}


def _communication(contact: dict, kind: str) -> str | None:
    for entry in contact.get("communicationItems") or ():
        if entry.get("communicationType") == kind:
            return entry.get("value")
    return None


# --- ConnectWise record -> Autotask record -----------------------------------------------


def company(record: dict) -> dict:
    kind = (record.get("types") or [None])[0]
    return {
        "id": record["id"],
        "companyName": record.get("name"),
        "companyNumber": record.get("identifier"),
        "companyType": kind["id"] if kind else None,
        "classification": None,
        "isActive": (record.get("status") or {}).get("name") != "Inactive" and not record.get("deletedFlag"),
        "phone": record.get("phoneNumber"),
        "address1": record.get("addressLine1"),
        "city": record.get("city"),
        "state": record.get("state"),
        "postalCode": record.get("zip"),
        "webAddress": record.get("website"),
        "parentCompanyID": None,
        "createDate": _stamp(record, "dateEntered"),
        "lastActivityDate": _stamp(record, "lastUpdated"),
        "lastTrackedModifiedDateTime": _stamp(record, "lastUpdated"),
        "userDefinedFields": [],
    }


def contact(record: dict) -> dict:
    kind = (record.get("types") or [None])[0]
    return {
        "id": record["id"],
        "companyID": (record.get("company") or {}).get("id"),
        "firstName": record.get("firstName"),
        "lastName": record.get("lastName"),
        "emailAddress": _communication(record, "Email"),
        "phone": _communication(record, "Phone"),
        "title": record.get("title"),
        "isActive": 0 if record.get("inactiveFlag") else 1,
        "primaryContact": bool(record.get("defaultFlag")),
        "createDate": _stamp(record, "dateEntered"),
        "lastActivityDate": _stamp(record, "lastUpdated"),
        "lastModifiedDate": _stamp(record, "lastUpdated"),
        "userDefinedFields": [_udf("Contact Type", kind["name"] if kind else None)],
    }


def product(record: dict) -> dict:
    sub = record.get("subcategory") or {}
    return {
        "id": record["id"],
        "name": record.get("description"),
        "description": record.get("customerDescription"),
        "sku": record.get("identifier"),
        "productCategory": (record.get("category") or {}).get("id"),
        "unitPrice": record.get("price"),
        "unitCost": record.get("cost"),
        "msrp": record.get("price"),
        "periodType": 3 if record.get("recurringFlag") else None,  # 3: monthly
        "manufacturerName": (record.get("manufacturer") or {}).get("name"),
        "isActive": not record.get("inactiveFlag"),
        "isSerialized": record.get("productClass") == "Inventory",
        "createdTime": _stamp(record, "dateEntered"),
        "userDefinedFields": [_udf("Product Subcategory", sub.get("name"))],
    }


def resource(record: dict) -> dict:
    return {
        "id": record["id"],
        "firstName": record.get("firstName"),
        "lastName": record.get("lastName"),
        "userName": record.get("identifier"),
        "email": record.get("primaryEmail"),
        "title": record.get("title"),
        "isActive": not record.get("inactiveFlag"),
        "resourceType": "Employee",
        "userType": 4 if record.get("licenseClass") == "A" else 1,
        "licenseType": 7 if record.get("licenseClass") == "A" else 1,
    }


def configuration_item(record: dict) -> dict:
    return {
        "id": record["id"],
        "companyID": (record.get("company") or {}).get("id"),
        "configurationItemType": (record.get("type") or {}).get("id"),
        "referenceTitle": record.get("name"),
        "referenceNumber": record.get("modelNumber"),
        "serialNumber": record.get("serialNumber"),
        "isActive": bool(record.get("activeFlag", True)),
        "productID": None,
        "createDate": _stamp(record, "dateEntered"),
        "lastModifiedTime": _stamp(record, "lastUpdated"),
        "userDefinedFields": [],
    }


_SHAPES = {"companies": company, "contacts": contact, "catalog": product, "members": resource,
           "configurations": configuration_item}


# --- search filters ----------------------------------------------------------------------

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _comparable(value):
    """Datetimes compare as instants, whatever their written form."""
    if isinstance(value, str) and _ISO.match(value):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return value


def _ordered(op):
    def compare(a, b):
        a, b = _comparable(a), _comparable(b)
        try:
            return a is not None and b is not None and op(a, b)
        except TypeError:
            return False
    return compare


def _text(fn):
    return lambda a, b: isinstance(a, str) and isinstance(b, str) and fn(a.lower(), b.lower())


_OPS = {
    "eq": lambda a, b: _comparable(a) == _comparable(b),
    "noteq": lambda a, b: _comparable(a) != _comparable(b),
    "gt": _ordered(lambda a, b: a > b), "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b), "lte": _ordered(lambda a, b: a <= b),
    "in": lambda a, b: isinstance(b, list) and a in b,
    "notin": lambda a, b: isinstance(b, list) and a not in b,
    "beginswith": _text(str.startswith), "endswith": _text(str.endswith), "contains": _text(lambda a, b: b in a),
    "exist": lambda a, b: a is not None, "notexist": lambda a, b: a is None,
}


def parse_filter(items, fields: set[str]):
    """A predicate over an Autotask record for the `filter` list (all must hold), or ApiError(500)
    as Autotask answers a query it cannot read."""
    if not isinstance(items, list):
        raise ApiError(500, "InvalidQuery", "Invalid query syntax: filter must be a list")
    tests = [_condition(item, fields) for item in items]
    return lambda record: all(test(record) for test in tests)


def _condition(item, fields: set[str]):
    if not isinstance(item, dict) or not isinstance(item.get("op"), str):
        raise ApiError(500, "InvalidQuery", "Invalid query syntax: every condition needs an op")
    op = item["op"].lower()
    if op in ("and", "or"):
        tests = [_condition(sub, fields) for sub in item.get("items") or []]
        combine = all if op == "and" else any
        return lambda record: combine(test(record) for test in tests)
    if op not in _OPS:
        raise ApiError(500, "InvalidQuery", f"Invalid query syntax: unknown operator {item['op']}")
    field = str(item.get("field", ""))
    name = next((f for f in fields if f.lower() == field.lower()), None)
    if name is None:
        raise ApiError(500, "InvalidQuery", f"Unable to find {field} in the entity")
    test, value = _OPS[op], item.get("value")
    return lambda record: test(record.get(name), value)


# --- the simulator ----------------------------------------------------------------------


class AutotaskSimulator(SimulatorBase):
    """An Autotask REST API on 127.0.0.1 serving `dataset` (see the module docstring).

    `credentials`: plain `username`, `secret`, `integration_code`; None means
    `DEMO_CREDENTIALS`. Use as a context manager or `start()` / `stop()`; the controls are
    `SimulatorBase`'s, with paths below the zone's `/v1.0` (e.g. `short_page("/Companies/query",
    2)`; the page number is in `nextPageUrl`), `malformed` / `poison` keyed by dataset kind.
    """

    api_prefix = API_PREFIX
    server_version = "AutotaskSimulator/1.0"
    name = "autotask"
    thread_limit = 3
    thread_limit_status = 500

    def __init__(self, dataset: Dataset, *, credentials: dict[str, str] | None = None, port: int = 0,
                 rate_limit: tuple[int, float] | None = (10000, 3600.0), tls: bool = False,
                 verbose: bool = False) -> None:
        self._credentials = checked_credentials(credentials, DEMO_CREDENTIALS, CREDENTIAL_KEYS)
        super().__init__(dataset, port=port, rate_limit=rate_limit, tls=tls, verbose=verbose)
        self.zone_requests = 0
        self._threads: dict[tuple[str, str], int] = {}
        self._threads_lock = threading.Lock()

    @property
    def zone_url(self) -> str:
        return self.base_url + ZONE_PREFIX + "/"

    def error_body(self, error: ApiError) -> dict:
        return {"errors": [error.message]}

    def _bad_request(self, message: str) -> ApiError:
        return ApiError(500, "InvalidQuery", message)

    # -- thread limit --------------------------------------------------------------------

    def _occupy(self, request):
        endpoint = self._endpoint(request.path)
        if endpoint is None:
            return super()._occupy(request)
        key = (request.headers.get("ApiIntegrationCode", ""), endpoint.split("/")[1] if "/" in endpoint else "")
        with self._threads_lock:
            if self._threads.get(key, 0) >= self.thread_limit:
                raise ApiError(self.thread_limit_status, "ThreadThreshold",
                               "Thread Threshold Exceeded: too many concurrent requests for this endpoint")
            self._threads[key] = self._threads.get(key, 0) + 1

        def release() -> None:
            with self._threads_lock:
                self._threads[key] -= 1
        return release

    # -- answering -----------------------------------------------------------------------

    def _answer(self, request) -> tuple[int, object, dict[str, str]]:
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.lower() == ZONE_LOOKUP.lower():
            return self._zone(query)
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, "NotFound", f"{path} is not an API path")
        endpoint = path[len(API_PREFIX):]
        self._count(endpoint)
        self._authenticate(request)
        entity, _, rest = endpoint[1:].partition("/")
        kind = ENTITIES.get(entity)
        if kind is None:
            raise ApiError(404, "NotFound", f"{entity} is not a known entity")
        if rest == "entityInformation/fields" and request.command == "GET":
            return 200, {"fields": self._fields(entity)}, {}
        if rest in ("query", "query/count"):
            search = self._search(request, query)
            if rest == "query/count":
                return 200, {"queryCount": self._query_count(entity, kind, search)}, {}
            return self._query(entity, kind, endpoint, search, query)
        raise ApiError(404, "NotFound", f"{endpoint} is not a known endpoint")

    def _zone(self, query: dict[str, str]):
        with self._count_lock:
            self.zone_requests += 1
        user = query.get("user", "")
        if not hmac.compare_digest(user.lower().encode(), self._credentials["username"].lower().encode()):
            raise ApiError(500, "ZoneNotFound", "Zone information could not be determined")
        return 200, {"zoneName": "Simulated Zone 5", "url": self.zone_url, "webUrl": self.base_url + "/zone5/",
                     "ci": 5}, {}

    def _authenticate(self, request) -> None:
        ok = True
        for header, key in (("ApiIntegrationCode", "integration_code"), ("UserName", "username"), ("Secret", "secret")):
            given = request.headers.get(header, "")
            ok &= hmac.compare_digest(given.encode(), self._credentials[key].encode())
        if not ok:
            raise ApiError(401, "Unauthorized", "User authentication failed: check ApiIntegrationCode, UserName and Secret")

    def _search(self, request, query: dict[str, str]) -> dict:
        text = request.body.decode("utf-8", "replace") if request.command == "POST" else query.get("search", "")
        try:
            search = json.loads(text) if text.strip() else {}
        except ValueError:
            raise ApiError(500, "InvalidQuery", "Invalid query syntax: the search is not JSON") from None
        if not isinstance(search, dict):
            raise ApiError(500, "InvalidQuery", "Invalid query syntax: the search must be an object")
        return {k.lower(): v for k, v in search.items()}

    def _matching(self, kind: str, search: dict, start: int = 0):
        """(index, Autotask record) of the records from `start` on that pass the filter."""
        records, ids = self._snapshot(kind)
        shape = self._shape(kind)
        predicate = None
        # An `id gt N` condition starts past N at once (ids are sorted), as the vendor's index would.
        for item in search.get("filter") or []:
            if isinstance(item, dict) and str(item.get("field", "")).lower() == "id" \
                    and item.get("op") == "gt" and isinstance(item.get("value"), int):
                start = max(start, self._after(ids, item["value"]))
        for index in range(start, len(records)):
            shaped = shape(records[index])
            if predicate is None:
                predicate = parse_filter(search.get("filter") or [], set(shaped))
            if predicate(shaped):
                yield index, shaped

    def _snapshot(self, kind: str) -> tuple[list[dict], list[int]]:
        if kind != "services":
            return super()._snapshot(kind)
        catalog, _ = super()._snapshot("catalog")
        recurring = [record for record in catalog if record.get("recurringFlag")]
        return recurring, [autotask_billing.service_id(record["id"]) for record in recurring]

    def _shape(self, kind: str):
        if kind in _SHAPES:
            return _SHAPES[kind]
        if kind == "services":
            return autotask_billing.service
        if kind == "agreements":
            return autotask_billing.contract
        agreements = {a["id"]: a for a in self.dataset.agreements}
        return lambda addition: autotask_billing.service_unit(addition, agreements)

    def _query_count(self, entity: str, kind: str, search: dict) -> int:
        extra = len(self.malformed.get(kind, [])) + len(self.poison.get(kind, []))
        return sum(1 for _ in self._matching(kind, search)) + extra + self._count_lie(f"/{entity}/query")

    def _query(self, entity: str, kind: str, endpoint: str, search: dict, query: dict[str, str]):
        size = search.get("maxrecords", MAX_RECORDS)
        if not isinstance(size, int) or not 1 <= size <= MAX_RECORDS:
            raise ApiError(500, "InvalidQuery", f"MaxRecords must be between 1 and {MAX_RECORDS}")
        page = self._int(query, "page", 1, minimum=1)
        after = self._int(query, "after", 0, minimum=0)
        _records, ids = self._snapshot(kind)
        chunk, more = [], False
        for _index, shaped in self._matching(kind, search, self._after(ids, after)):
            if len(chunk) == size:
                more = True
                break
            chunk.append(shaped)
        fields = search.get("includefields") or []
        if fields:
            wanted = {str(f).lower() for f in fields}
            chunk = [{k: v for k, v in r.items() if k.lower() in wanted} for r in chunk]
        next_url = None
        if more:
            params = {"page": page + 1, "after": chunk[-1].get("id", after) if chunk else after}
            if "search" in query:  # a GET query's next page is the same query: its URL carries the search
                params["search"] = query["search"]
            next_url = f"{self.api_url}{endpoint}?{urlencode(params)}"
        malformed, poison = self.malformed.get(kind, []), self.poison.get(kind, [])
        if page == 1:
            chunk = chunk + malformed
        chunk = self._shortened(endpoint, page, chunk)
        details = {"count": len(chunk) + (len(poison) if page == 1 else 0), "requestCount": size,
                   "prevPageUrl": None, "nextPageUrl": next_url}
        if poison and page == 1:
            return 200, RawJson(f'{{"items":{json_list(chunk, poison)},"pageDetails":{json.dumps(details)}}}'), {}
        return 200, {"items": chunk, "pageDetails": details}, {}

    # -- entity information --------------------------------------------------------------

    def _fields(self, entity: str) -> list[dict]:
        kind = ENTITIES[entity]
        records = self._snapshot(kind)[0]
        with self.lock:
            sample = self._shape(kind)(records[0]) if records else {"id": 0}
            picklists = {
                ("Companies", "companyType"): [(t["id"], t["name"]) for t in self.dataset.company_types],
                ("Products", "productCategory"): [(c["id"], c["name"]) for c in self.dataset.categories],
                ("ConfigurationItems", "configurationItemType"):
                    [(t["id"], t["name"]) for t in self.dataset.configuration_types],
            }
        fields = []
        for name, value in sample.items():
            if name == "userDefinedFields":
                continue
            values = picklists.get((entity, name))
            fields.append({
                "name": name,
                "dataType": _data_type(name, value),
                "length": 0,
                "isRequired": name == "id",
                "isReadOnly": name == "id",
                "isQueryable": True,
                "isReference": name.endswith("ID"),
                "referenceEntityType": "",
                "isPickList": values is not None,
                "picklistValues": None if values is None else [
                    {"value": str(value_id), "label": label, "isDefaultValue": False, "sortOrder": n,
                     "parentValue": "", "isActive": True, "isSystem": False}
                    for n, (value_id, label) in enumerate(values)],
                "picklistParentValueField": "",
                "isSupportedWebhookField": False,
            })
        return fields


def _data_type(name: str, value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or name == "id" or name.endswith("ID"):
        return "integer"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, str) and _ISO.match(value):
        return "datetime"
    return "string"


# --- command line ------------------------------------------------------------------------


def run_forever(port: int, dataset_name: str = "small", seed: int = 1,
                credentials: dict[str, str] | None = None, *, credentials_source: str | None = None,
                tls: bool = False) -> None:
    """Serve until Ctrl-C (`hg-pipeline simulate autotask`). `credentials`: resolved plain
    values (`username`, `secret`, `integration_code`), or None for the demo ones."""
    run_simulator(AutotaskSimulator, "Autotask", DEMO_CREDENTIALS, port, dataset_name, seed, credentials,
                  credentials_source, tls, f" (zone lookup at {ZONE_LOOKUP})")


if __name__ == "__main__":
    run_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 8103)
