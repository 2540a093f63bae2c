"""A HaloPSA REST API simulator: a real HTTP server on 127.0.0.1.

It serves the same `Dataset` as the ConnectWise simulator (the same companies, contacts,
products, members and assets, with the same ids), translated per request into HaloPSA's
shapes, whose field names and types follow the vendor's OpenAPI component schemas
(`../shared/vendor-specs/halopsa-openapi-subset.json`: `Area`, `Users`, `Item`, `Uname`,
`Device`, `Generic`, `Xtype`, `Lookup`, `UserRoles`). Tests edit the dataset's ConnectWise-
shaped records and see the edits here (a changed `_info.lastUpdated` moves `alastupdate`...).

- auth: OAuth2 client credentials at `POST /auth/token` (form: `grant_type=client_credentials`,
  `client_id`, `client_secret`, `scope`; `tenant` as a form field or in the query string when
  the credentials name one); the token lasts `token_lifetime` seconds (`expires_in`, 3600) and
  `Authorization: Bearer <token>` is required on `/api/...` (401 without it, after expiry, or
  after `revoke_tokens()`); `token_requests` counts the token calls;
- lists (paths case-insensitive, counted under their spec spelling, e.g. `/Client`):
  `/Client` (`clients`), `/Users` (`users`), `/Item` (`items`), `/Asset` (`assets`) wrapped as
  `{"record_count": N, "<key>": [...]}`, paged with `pageinate=true&page_size=&page_no=`
  (1-based; `page_size` defaults to 50, capped at `max_page_size`), otherwise whole (`count`
  limits); `idonly=true` gives only ids and ignores paging; sorted by id (`order=<field>`,
  `orderdesc=true` otherwise); inactive rows only with `includeinactive=true`
  (`activeinactive` too); `client_id` filters users and assets;
- bare arrays, unpaged: `/Agent` (disabled agents only with `includedisabled=true`),
  `/AssetGroup` (the product categories), `/AssetType` (product subcategories, ids 1..,
  and device types, ids from `DEVICE_TYPE_ID_BASE`), `/Lookup?lookupid=CUSTOMER_TYPE_LOOKUP`
  (client types), `/Roles` (user roles: the contact types);
- billing (`halo_billing.py`): `/RecurringInvoice` (one per agreement, only the active ones
  without `includeinactive=true`) and `/Invoice`, paged like `/Client`, lines with `includelines=true`;
- rate limit: `rate_limit = (300, 300)` by default, like hosted Halo; beyond it `429` with the
  text "Rate Limit Reached - 300 Requests per rolling 5 minute window" and `Retry-After`;
- API errors are one line of text/plain; token errors are OAuth2 JSON (`{"error": ...}`).

Vendor choices the notes leave UNCONFIRMED and this simulator fixes (see docs/decisions.md):
client type = `customertype` (lookup value id) and `customertype_new` (its name) on the
client, listed by `/Lookup?lookupid=33`; contact type = the user's `roles` (first = primary),
listed by `/Roles`; item subcategory = the item's asset type; an item is inactive when its
`status` is 1. A company of several ConnectWise types has its first one here; a ConnectWise
company with `deletedFlag` is gone (Halo deletes for good).
"""

from __future__ import annotations

import hmac
import secrets
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

from hg_pipeline.simulators.base import (
    ApiError,
    PlainText,
    RawJson,
    SimulatorBase,
    checked_credentials,
    json_list,
    run_simulator,
)
from hg_pipeline.simulators import halo_billing
from hg_pipeline.simulators.datasets import CONFIGURATION_TYPES, Dataset

API_PREFIX = "/api"
TOKEN_PATH = "/auth/token"
DEFAULT_PAGE_SIZE = 50
CUSTOMER_TYPE_LOOKUP = 33
DEVICE_TYPE_ID_BASE = 101
TOPLEVEL = (1, "Clients")

# Accepted without --credential: client id "hg-demo-client", secret "demo-client-secret",
# no tenant. Demo values only; they protect nothing.
DEMO_CREDENTIALS: dict[str, str] = {"client_id": "hg-demo-client", "client_secret": "demo-client-secret"}
CREDENTIAL_KEYS = ("client_id", "client_secret")  # plus an optional "tenant"

# spec path -> (Dataset kind, list key or None for a bare array)
LISTS: dict[str, tuple[str, str | None]] = {
    "/Client": ("companies", "clients"),
    "/Users": ("contacts", "users"),
    "/Item": ("catalog", "items"),
    "/Asset": ("configurations", "assets"),
    "/Agent": ("members", None),
    "/AssetGroup": ("categories", None),
    "/AssetType": ("subcategories", None),
    "/Lookup": ("company_types", None),
    "/Roles": ("contact_types", None),
    "/RecurringInvoice": ("agreements", "invoices"),  # billing: halo_billing.py
    "/Invoice": ("invoices", "invoices"),
}
_CANONICAL = {path.lower(): path for path in LISTS}
_PAGED = ("/Client", "/Users", "/Item", "/Asset", "/RecurringInvoice", "/Invoice")


def _stamp(record: dict, key: str) -> str | None:
    return (record.get("_info") or {}).get(key)


def _email(contact: dict) -> str:
    for item in contact.get("communicationItems") or ():
        if item.get("communicationType") == "Email":
            return item.get("value") or ""
    return ""


def _phone(contact: dict) -> str:
    for item in contact.get("communicationItems") or ():
        if item.get("communicationType") == "Phone":
            return item.get("value") or ""
    return ""


# --- ConnectWise record -> HaloPSA record ------------------------------------------------


def client(company: dict) -> dict:
    kind = (company.get("types") or [None])[0]
    return {
        "id": company["id"],
        "name": company.get("name"),
        "inactive": (company.get("status") or {}).get("name") == "Inactive",
        "toplevel_id": TOPLEVEL[0],
        "toplevel_name": TOPLEVEL[1],
        "customertype": kind["id"] if kind else 0,
        "customertype_new": kind["name"] if kind else "",
        "areatype": 0,
        "website": company.get("website"),
        "main_phonenumber": company.get("phoneNumber"),
        "main_site_id": company["id"],
        "main_site_name": "Main",
        "accountsid": company.get("identifier"),
        "datecreated": _stamp(company, "dateEntered"),
        "alastupdate": _stamp(company, "lastUpdated"),
    }


def user(contact: dict) -> dict:
    company = contact.get("company") or {}
    roles = [{"id": t["id"], "name": t["name"]} for t in contact.get("types") or ()]
    first, last = contact.get("firstName") or "", contact.get("lastName") or ""
    return {
        "id": contact["id"],
        "name": f"{first} {last}".strip(),
        "firstname": first,
        "surname": last,
        "emailaddress": _email(contact),
        "phonenumber": _phone(contact),
        "title": contact.get("title"),
        "client_id": company.get("id"),
        "client_name": company.get("name"),
        "site_id": float(company["id"]) if company.get("id") is not None else None,
        "site_name": "Main",
        "inactive": bool(contact.get("inactiveFlag")),
        "roles": roles,
        "role_list": ", ".join(r["name"] for r in roles),
        "datecreated": _stamp(contact, "dateEntered"),
        "ulastupdate": _stamp(contact, "lastUpdated"),
    }


def item(product: dict) -> dict:
    category = product.get("category") or {}
    sub = product.get("subcategory") or {}
    recurring = bool(product.get("recurringFlag"))
    return {
        "id": product["id"],
        "name": product.get("description"),
        "description": product.get("customerDescription"),
        "internalreference": product.get("identifier"),
        "baseprice": product.get("price"),
        "costprice": product.get("cost"),
        "isrecurringitem": recurring,
        "recurringprice": product.get("price") if recurring else 0.0,
        "recurringcost": product.get("cost") if recurring else 0.0,
        "assetgroup_id": category.get("id"),
        "assetgroup_name": category.get("name"),
        "assettype_id": sub.get("id", 0),
        "assettype_name": sub.get("name", ""),
        "supplier_name": (product.get("manufacturer") or {}).get("name", ""),
        "taxable": bool(product.get("taxableFlag")),
        "type": (product.get("type") or {}).get("id"),
        "status": 1 if product.get("inactiveFlag") else 0,
        "datecreated": _stamp(product, "dateEntered"),
        "lastmodified": _stamp(product, "lastUpdated"),
    }


def agent(member: dict) -> dict:
    first, last = member.get("firstName") or "", member.get("lastName") or ""
    return {
        "id": member["id"],
        "name": f"{first} {last}".strip(),
        "firstname": first,
        "surname": last,
        "initials": (first[:1] + last[:1]).upper(),
        "email": member.get("primaryEmail"),
        "jobtitle": member.get("title"),
        "isdisabled": bool(member.get("inactiveFlag")),
        "is_agent": True,
        "isapiagent": member.get("licenseClass") == "A",
        "licence_type": 0 if member.get("licenseClass") == "F" else 1,
        "datecreated": _stamp(member, "dateEntered"),
    }


def asset(configuration: dict) -> dict:
    company = configuration.get("company") or {}
    kind = configuration.get("type") or {}
    status = configuration.get("status") or {}
    _group_id, group_name = _device_group(kind.get("name"))
    fields = [
        {"id": 1, "name": "Serial Number", "value": configuration.get("serialNumber"), "display": configuration.get("serialNumber")},
        {"id": 2, "name": "Manufacturer", "value": (configuration.get("manufacturer") or {}).get("name"),
         "display": (configuration.get("manufacturer") or {}).get("name")},
        {"id": 3, "name": "Model", "value": configuration.get("modelNumber"), "display": configuration.get("modelNumber")},
    ]
    return {
        "id": configuration["id"],
        "inventory_number": configuration.get("name"),
        "key_field": configuration.get("name"),
        "key_field2": configuration.get("serialNumber"),
        "client_id": company.get("id"),
        "client_name": company.get("name"),
        "site_id": company.get("id"),
        "site_name": "Main",
        "assettype_id": DEVICE_TYPE_ID_BASE - 1 + kind["id"] if kind.get("id") else None,
        "assettype_name": kind.get("name"),
        "assetgroup_name": group_name,
        "status_id": status.get("id"),
        "status_name": status.get("name"),
        "inactive": not configuration.get("activeFlag", True),
        "fields": fields,
        "dlastupdate": _stamp(configuration, "lastUpdated"),
    }


# Device types belong to the product category their hardware is sold under.
_DEVICE_GROUPS = {"Virtual Machine": (5, "Cloud Services"), "Backup Appliance": (4, "Backup")}


def _device_group(type_name: str | None) -> tuple[int, str]:
    return _DEVICE_GROUPS.get(type_name or "", (1, "Hardware"))


def asset_group(category: dict, types: list[dict]) -> dict:
    return {"id": category["id"], "name": category.get("name"), "showasitem": True, "showasequip": True,
            "assettypes": types, "nominalcode": ""}


def asset_type(type_id: int, name: str, group_id: int, group_name: str) -> dict:
    return {"id": type_id, "name": name, "assetgroup_id": group_id, "assetgroup_name": group_name}


def customer_type(company_type: dict) -> dict:
    return {"id": company_type["id"], "lookupid": CUSTOMER_TYPE_LOOKUP, "name": company_type.get("name"),
            "inactive": False, "sequence": company_type["id"]}


def role(contact_type: dict) -> dict:
    return {"id": contact_type["id"], "name": contact_type.get("description"), "notes": ""}


# --- the simulator ----------------------------------------------------------------------


class HaloPsaSimulator(SimulatorBase):
    """A HaloPSA API on 127.0.0.1 serving `dataset` (see the module docstring).

    `credentials`: plain `client_id`, `client_secret` and optional `tenant`; None means
    `DEMO_CREDENTIALS`. Use as a context manager or `start()` / `stop()`; the controls are
    `SimulatorBase`'s, with paths below `/api` (e.g. `short_page("/Client", 2)`), the page
    being `page_no`, and `malformed` / `poison` keyed by dataset kind (e.g. "companies").
    """

    api_prefix = API_PREFIX
    server_version = "HaloPSASimulator/1.0"
    name = "halo"
    page_parameter = "page_no"

    def __init__(self, dataset: Dataset, *, credentials: dict[str, str] | None = None, port: int = 0,
                 max_page_size: int = 1000, rate_limit: tuple[int, float] | None = (300, 300.0),
                 token_lifetime: int = 3600, tls: bool = False, verbose: bool = False) -> None:
        self._credentials = checked_credentials(credentials, DEMO_CREDENTIALS, CREDENTIAL_KEYS)
        super().__init__(dataset, port=port, rate_limit=rate_limit, tls=tls, verbose=verbose)
        self.max_page_size = max_page_size
        self.token_lifetime = token_lifetime
        self.token_requests = 0
        self._tokens: dict[str, float] = {}  # token -> time.monotonic() it expires
        self._token_lock = threading.Lock()

    # -- errors --------------------------------------------------------------------------

    def error_body(self, error: ApiError) -> PlainText:
        return PlainText(error.message)

    def _rate_limited(self, wait: int) -> ApiError:
        limit, window = self.rate_limit or (0, 0)
        minutes = f"{window / 60:g} minute" if window >= 60 else f"{window:g} second"
        return ApiError(429, "TooManyRequests", f"Rate Limit Reached - {limit} Requests per rolling {minutes} window",
                        {"Retry-After": str(wait)})

    def _bad_request(self, message: str) -> ApiError:
        return ApiError(400, "BadRequest", message)

    # -- tokens --------------------------------------------------------------------------

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (as if Halo had restarted)."""
        with self._token_lock:
            self._tokens.clear()

    def _issue_token(self, request) -> tuple[int, object, dict[str, str]]:
        with self._token_lock:
            self.token_requests += 1
        if request.command != "POST":
            return 405, {"error": "invalid_request", "error_description": "use POST"}, {"Allow": "POST"}
        try:
            form = {k: v[-1] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}
            query = {k: v[-1] for k, v in parse_qs(urlsplit(request.path).query).items()}
        except (UnicodeDecodeError, ValueError):
            return 400, {"error": "invalid_request"}, {}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}, {}
        given_id, given_secret = form.get("client_id", ""), form.get("client_secret", "")
        ok = (hmac.compare_digest(given_id.encode(), self._credentials["client_id"].encode())
              & hmac.compare_digest(given_secret.encode(), self._credentials["client_secret"].encode()))
        tenant = self._credentials.get("tenant")
        if tenant and form.get("tenant", query.get("tenant", "")) != tenant:
            ok = False
        if not ok:
            return 401, {"error": "invalid_client"}, {}
        token = secrets.token_urlsafe(32)
        with self._token_lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime,
                     "scope": form.get("scope") or "all"}, {}

    def _authenticate(self, request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else ""
        with self._token_lock:
            expires = self._tokens.get(token)
        if expires is None or time.monotonic() >= expires:
            raise ApiError(401, "Unauthorized", "Unauthorized: a valid bearer token is required")

    # -- answering -----------------------------------------------------------------------

    def _answer(self, request) -> tuple[int, object, dict[str, str]]:
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/") or "/"
        if path.lower() == TOKEN_PATH:
            return self._issue_token(request)
        if not path.lower().startswith(API_PREFIX + "/"):
            raise ApiError(404, "NotFound", f"{path} is not an API path")
        endpoint = _CANONICAL.get(path[len(API_PREFIX):].lower(), path[len(API_PREFIX):])
        self._count(endpoint)
        self._authenticate(request)
        if request.command != "GET":
            raise ApiError(405, "MethodNotAllowed", "This simulator is read-only", {"Allow": "GET"})
        if endpoint not in LISTS:
            raise ApiError(404, "NotFound", f"{endpoint} is not a known endpoint")
        query = {k.lower(): v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if endpoint in _PAGED:
            return self._paged(endpoint, query)
        return 200, self._reference(endpoint, query), {}

    @staticmethod
    def _flag(query: dict[str, str], name: str) -> bool:
        return query.get(name, "").strip().lower() == "true"

    def _paged(self, endpoint: str, query: dict[str, str]):
        kind, key = LISTS[endpoint]
        records, _ids = self._snapshot(kind)
        if kind == "companies":
            records = [r for r in records if not r.get("deletedFlag")]
        shape = _SHAPES[kind] if kind in _SHAPES else self._billing_shape(kind, self._flag(query, "includelines"))
        include_inactive = self._flag(query, "includeinactive") or query.get("activeinactive", "").count("true") == 2
        client_id = self._int(query, "client_id", 0, minimum=0) if kind in ("contacts", "configurations") else 0
        if not include_inactive or client_id:
            records = [r for r in records if (include_inactive or not _INACTIVE[kind](r))
                       and (not client_id or (r.get("company") or {}).get("id") == client_id)]
        malformed, poison = self.malformed.get(kind, []), self.poison.get(kind, [])
        total = len(records) + len(malformed) + len(poison)
        order = query.get("order", "").strip()
        descending = self._flag(query, "orderdesc")
        if self._flag(query, "idonly"):
            body = {"record_count": total, key: [{"id": r["id"]} for r in records]}
            return 200, body, {}
        if order and order.lower() != "id":
            shaped = sorted((shape(r) for r in records), key=lambda r: (r.get(order) is None, str(r.get(order)), r["id"]))
            records, shape = (shaped[::-1] if descending else shaped), dict
        elif descending:
            records = records[::-1]
        page = 1
        if self._flag(query, "pageinate"):
            page_size = min(self._int(query, "page_size", DEFAULT_PAGE_SIZE, minimum=1), self.max_page_size)
            page = self._int(query, "page_no", 1, minimum=1)
            chunk = records[(page - 1) * page_size: page * page_size]
        else:
            count = self._int(query, "count", 0, minimum=0)
            chunk = records[:count] if count else records
        chunk = [shape(r) for r in chunk]
        if page == 1:
            chunk += malformed
        chunk = self._shortened(endpoint, page, chunk)
        total += self._count_lie(endpoint)
        if poison and page == 1:
            return 200, RawJson(f'{{"record_count":{total},"{key}":{json_list(chunk, poison)}}}'), {}
        return 200, {"record_count": total, key: chunk}, {}

    def _billing_shape(self, kind: str, lines: bool):
        """A recurring invoice (an agreement) or an invoice, with its lines when asked."""
        children: dict[int, list[dict]] = {}
        if kind == "agreements":
            for addition in self.dataset.agreement_additions:
                children.setdefault(addition["agreementId"], []).append(addition)
            return lambda record: halo_billing.recurring_invoice(record, children.get(record["id"], []), lines)
        for item in self.dataset.product_items:
            children.setdefault((item.get("invoice") or {}).get("id"), []).append(item)
        return lambda record: halo_billing.invoice(record, children.get(record["id"], []), lines)

    def _reference(self, endpoint: str, query: dict[str, str]) -> list[dict]:
        ds = self.dataset
        with self.lock:
            if endpoint == "/Agent":
                members = list(ds.members)
                if not self._flag(query, "includedisabled"):
                    members = [m for m in members if not m.get("inactiveFlag")]
                return [agent(m) for m in members]
            if endpoint == "/Lookup":
                if self._int(query, "lookupid", 0, minimum=0) != CUSTOMER_TYPE_LOOKUP:
                    return []
                return [customer_type(t) for t in ds.company_types]
            if endpoint == "/Roles":
                return [role(t) for t in ds.contact_types]
            types = self._asset_types()
            if endpoint == "/AssetType":
                group = self._int(query, "assetgroup_id", 0, minimum=0)
                return [t for t in types if not group or t["assetgroup_id"] == group]
            return [asset_group(c, [t for t in types if t["assetgroup_id"] == c["id"]]) for c in ds.categories]

    def _asset_types(self) -> list[dict]:
        """Product subcategories (their own ids) and device types (from DEVICE_TYPE_ID_BASE)."""
        types = [asset_type(s["id"], s.get("name"), s["category"]["id"], s["category"]["name"])
                 for s in self.dataset.subcategories]
        for t in self.dataset.configuration_types:
            types.append(asset_type(DEVICE_TYPE_ID_BASE - 1 + t["id"], t.get("name"), *_device_group(t.get("name"))))
        return types


_SHAPES = {"companies": client, "contacts": user, "catalog": item, "configurations": asset}
_INACTIVE = {
    "companies": lambda r: (r.get("status") or {}).get("name") == "Inactive",
    "contacts": lambda r: bool(r.get("inactiveFlag")),
    "catalog": lambda r: bool(r.get("inactiveFlag")),
    "configurations": lambda r: not r.get("activeFlag", True),
    "agreements": lambda r: r.get("agreementStatus") != "Active",
    "invoices": lambda r: False,
}
assert len(CONFIGURATION_TYPES) < DEVICE_TYPE_ID_BASE


# --- command line ------------------------------------------------------------------------


def run_forever(port: int, dataset_name: str = "small", seed: int = 1,
                credentials: dict[str, str] | None = None, *, credentials_source: str | None = None,
                tls: bool = False) -> None:
    """Serve until Ctrl-C (`hg-pipeline simulate halopsa`). `credentials`: resolved plain
    values (`client_id`, `client_secret`, optional `tenant`), or None for the demo ones."""
    run_simulator(HaloPsaSimulator, "HaloPSA", DEMO_CREDENTIALS, port, dataset_name, seed, credentials,
                  credentials_source, tls, f" (token at {TOKEN_PATH}, API under {API_PREFIX})")


if __name__ == "__main__":
    run_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 8102)
