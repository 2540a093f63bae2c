"""HaloPSA connector: raw pages out of the REST API (`/api/...`), and their normalization.

Endpoints are data (`ENDPOINTS`); auth is OAuth2 client credentials at `/auth/token`
(scope `all`, `tenant` when the credentials name one; the token is fetched again before it
expires and once after a 401). Two of the paging strategies of `paginators.py` (psa-api-notes 2):

- "numbered_pages": `pageinate=true&page_size=&page_no=` (1-based), the body
  `{"record_count": N, "<key>": [...]}` (`fetch` hands the strategy the records and the count);
  read one page at a time (Halo allows 300 requests per rolling 5 minutes, so pages in flight
  would only meet the 429 sooner), checked against the completeness rules of `paging.py` with
  `record_count` as the PSA's count;
- "whole": an unpaged bare array (agents, asset groups and types, lookups, roles), and the
  id sweep of the paged lists (`idonly=true` ignores paging).

Changes: Halo's list filters on the last update are UNCONFIRMED, so an incremental read
reads the whole list (completeness checked as for a full one) and keeps the records whose
stamp (`alastupdate`, `ulastupdate`, `lastmodified`, `dlastupdate`) is after `since`, or that
have none that can be read. Unstamped lists (the "whole" ones) are always read whole.
Deletions: Halo deletes for good; the id sweep asks `idonly=true` (one request per list).

Vendor choices left UNCONFIRMED by the notes follow the simulator (docs/decisions.md
"Simulators"): company type = `customertype_new` (`/Lookup?lookupid=33`), contact types = the
user's `roles` (`/Roles`), product category = the item's asset group (`/AssetGroup`),
subcategory = its asset type (`/AssetType`); inactive rows need `includeinactive=true`,
disabled agents `includedisabled=true`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from urllib.parse import urlsplit

from hg_pipeline.connectors import halo_spend
from hg_pipeline.connectors.auth import OAuth2ClientCredentials
from hg_pipeline.connectors.spend_lines import SPEND_MONTHS, window
from hg_pipeline.connectors.base import Endpoint, HttpConnector, Page
from hg_pipeline.connectors.http import DEFAULT_DEADLINE, PsaError, PsaHttp, shared_limiter
from hg_pipeline.connectors.jsonsafe import decode_records
from hg_pipeline.connectors.paginators import Answer, Request, read, total
from hg_pipeline.connectors.records import (
    RecordError,
    normalized,
    email_address as _email,
    flag as _flag,
    id_text,
    number as _number,
    payload_id,
    text_value as _text,
)
from hg_pipeline.connectors.registry import source

log = logging.getLogger("hg_pipeline.connectors")

SPEC = source("halopsa")
TOKEN_PATH = "/auth/token"
API_ROOT = "api/"
SCOPE = "all"
MAX_PAGE_SIZE = 1000
CUSTOMER_TYPE_LOOKUP = 33  # the lookup that lists client (customer) types

# psa_id prefixes keep asset group (category) and asset type (subcategory) ids apart.
CATEGORY_PREFIX = "cat-"
SUBCATEGORY_PREFIX = "sub-"

ENDPOINTS: dict[str, tuple[Endpoint, ...]] = {
    "company_types": (Endpoint("company_types", "Lookup", paginator="whole"),),
    "contact_types": (Endpoint("contact_types", "Roles", paginator="whole"),),
    "product_categories": (Endpoint("product_categories", "AssetGroup", paginator="whole", id_prefix=CATEGORY_PREFIX),
                           Endpoint("product_categories", "AssetType", paginator="whole",
                                    id_prefix=SUBCATEGORY_PREFIX)),
    "companies": (Endpoint("companies", "Client", paginator="numbered_pages", data_selector="clients",
                           change_field="alastupdate", sweep="whole"),),
    "contacts": (Endpoint("contacts", "Users", paginator="numbered_pages", data_selector="users",
                          change_field="ulastupdate", sweep="whole"),),
    "products": (Endpoint("products", "Item", paginator="numbered_pages", data_selector="items",
                          change_field="lastmodified", sweep="whole"),),
    "members": (Endpoint("members", "Agent", paginator="whole"),),
    "assets": (Endpoint("assets", "Asset", paginator="numbered_pages", data_selector="assets",
                        change_field="dlastupdate", sweep="whole"),),
}
# Query parameters every request of a path carries.
_PARAMS: dict[str, dict[str, object]] = {
    "Lookup": {"lookupid": CUSTOMER_TYPE_LOOKUP},
    "Agent": {"includedisabled": "true"},
    "Client": {"includeinactive": "true"},
    "Users": {"includeinactive": "true"},
    "Item": {"includeinactive": "true"},
    "Asset": {"includeinactive": "true"},
    **halo_spend.PARAMS,
}

_LABELS = {
    "company_types": "client type", "contact_types": "role", "product_categories": "asset group or type",
    "companies": "client", "contacts": "user", "products": "item", "members": "agent", "assets": "asset",
    "spend": "spend line",
}


class HaloPsaConnector(HttpConnector):
    """Reads one HaloPSA tenant.

    `base_url` is the Halo site root (`https://acme.halopsa.com`, or a simulator's
    `http://127.0.0.1:PORT`): the token is at `/auth/token`, the API under `/api`.
    `credentials` are plain values for `client_id`, `client_secret` and optional `tenant`.
    `concurrency` is accepted for the common options and not used (pages are read in turn).
    """

    source = "halopsa"
    payload_id = staticmethod(payload_id)
    spend_until: str | None = None  # the last month ("YYYY-MM") of the spend window; None: this month
    spend_months = SPEND_MONTHS

    def __init__(
        self,
        base_url: str,
        credentials: Mapping[str, str],
        *,
        page_size: int = 1000,
        concurrency: int = 1,
        requests_per_second: float | None = None,
        max_retries: int = 5,
        timeout: float = 30,
        deadline: float = DEFAULT_DEADLINE,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        since_inclusive: bool = False,
        http_options: Mapping[str, object] | None = None,
    ) -> None:
        missing = [key for key in SPEC.required_keys if not credentials.get(key)]
        if missing:
            raise ValueError(f"HaloPSA credentials lack {', '.join(missing)}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.concurrency = 1  # pages in turn (see the module docstring)
        self.since_inclusive = since_inclusive
        self.auth = OAuth2ClientCredentials(TOKEN_PATH, credentials["client_id"], credentials["client_secret"],
                                            scope=SCOPE, tenant=credentials.get("tenant") or None)
        self.http = PsaHttp(
            self.base_url,
            headers={"Accept": "application/json"},
            auth=self.auth,
            secrets=[credentials[key] for key in SPEC.credential_keys if credentials.get(key)],
            max_retries=max_retries,
            backoff=backoff,
            max_wait=max_wait,
            timeout=timeout,
            deadline=deadline,
            pool_size=2,
            rate_limiter=shared_limiter(self.base_url, requests_per_second),
            **(http_options or {}),
        )

    # -- reading -------------------------------------------------------------------------

    def supports_incremental(self, entity: str) -> bool:
        """Whether the records of `entity` carry a stamp to keep only changes by (the read is
        whole either way; see the module docstring); spend is read whole when read."""
        if entity == "spend":
            return False
        return all(endpoint.change_field for endpoint in _endpoints(entity))

    def spend_changed_since(self, since: datetime) -> str | None:
        """Always a reason to read spend whole: its lists cannot be asked for changes (`halo_spend`)."""
        return halo_spend.changed_since(since)

    def iter_pages(self, entity: str, since: datetime | None = None, *, previous: int = 0,
                   resume: str | None = None) -> Iterator[list]:
        """Raw payload pages of `entity`; with `since`, only the records stamped after it
        (or whose stamp cannot be read). `previous`: records the last extraction staged (a
        read that gets nothing back without a readable count is then incomplete).

        A numbered page is a `Page` whose token (endpoint, page number, last id) resumes the
        read after it; Halo cannot filter by id, so a resumed read first asks for that page
        again and refuses to resume (`ResumeRefused`) when it no longer ends with that id."""
        if entity == "spend":
            yield from halo_spend.spend_pages(self, window(self.spend_until, self.spend_months))
            return
        for endpoint, page in read(self, _endpoints(entity), self._request, previous=previous, resume=resume):
            if since is not None and endpoint.change_field:
                page = Page([record for record in page if self._changed(record, endpoint.change_field, since)],
                            page.resume)
            if page or page.resume:
                yield page

    def iter_ids(self, entity: str, *, previous: int = 0) -> Iterator[str]:
        """Every psa_id of `entity` (an id-only sweep, for delete detection); a record whose id
        is not a valid id is left out."""
        pages = read(self, _endpoints(entity), lambda endpoint: self._request(endpoint, sweep=True),
                     previous=previous, sweep=True)
        for endpoint, page in pages:
            for record in page:
                try:
                    yield endpoint.id_prefix + id_text(record.get("id") if isinstance(record, Mapping) else None,
                                                       endpoint.path)
                except RecordError as error:
                    log.warning("id sweep: %s; left out", error)

    def count(self, entity: str) -> int | None:
        """How many records of `entity` the PSA lists (`record_count`); None when it cannot say."""
        return total(self, _endpoints(entity), self._request)

    def _changed(self, record: object, field: str, since: datetime) -> bool:
        stamp = record.get(field) if isinstance(record, Mapping) else None
        try:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except (AttributeError, TypeError, ValueError):
            return True  # no readable stamp: let staging's change detection decide
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment >= since if self.since_inclusive else moment > since

    def _request(self, endpoint: Endpoint, sweep: bool = False) -> Request:
        params = dict(_PARAMS.get(endpoint.path, {}))
        if sweep and endpoint.sweep == "whole":  # idonly ignores paging: every id in one answer
            params["idonly"] = "true"
        elif endpoint.paginator == "numbered_pages":
            params.update(pageinate="true", page_size=self.page_size)
        return Request(API_ROOT + endpoint.path, params)

    # -- what the paginators ask of a source (see `paginators.PagedSource`) ------------------

    def fetch(self, endpoint: Endpoint, request: Request, abandon=None) -> Answer:
        """One request: its records, and `record_count` when the body is the paged wrapper."""
        body, _ = self.http.get_json(request.url, request.params, decode=decode_records)
        if endpoint.data_selector is None:
            records, count = body, None
        elif isinstance(body, Mapping):
            records, count = body.get(endpoint.data_selector), body.get("record_count")
        else:
            records, count = None, None
        if not isinstance(records, list):
            path = urlsplit(self.http.url(request.url)).path
            where = f"a {endpoint.data_selector!r} list" if endpoint.data_selector else "a JSON list"
            raise PsaError(f"GET {path}: expected {where} of records", status=200, url_path=path)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            count = None
        return Answer(records, count)

    def counted(self, endpoint: Endpoint, request: Request) -> int | None:
        """`record_count` of a one-record page."""
        return self.fetch(endpoint, request.with_params(page_size=1, page_no=1)).count

    def after(self, endpoint: Endpoint, request: Request, last_id: int) -> Request:
        raise NotImplementedError("HaloPSA lists cannot be filtered by id")

    def where(self, endpoint: Endpoint) -> str:
        return self.http.scrub("/" + API_ROOT + endpoint.path)

    # -- normalizing ---------------------------------------------------------------------

    def normalize(self, entity: str, payload: Mapping) -> dict:
        """The normalized record of one payload (keys: NORMALIZED_FIELDS[entity])."""
        try:
            build = _NORMALIZERS[entity]
        except KeyError:
            raise ValueError(f"unknown entity {entity!r}") from None
        return normalized(entity, payload, build, _LABELS[entity])


def _endpoints(entity: str) -> tuple[Endpoint, ...]:
    try:
        return ENDPOINTS[entity]
    except KeyError:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENDPOINTS)}") from None


# --- normalizers (pure functions of one payload) ------------------------------------------


def _id(payload: Mapping, what: str) -> str:
    """The record's id: Halo ids are positive integers."""
    return id_text(payload.get("id"), what)


def _named(payload: Mapping, what: str) -> dict:
    psa_id = _id(payload, what)
    return {"psa_id": psa_id, "name": _text(payload, "name", f"{what} {psa_id}", required=True)}


def _product_category(payload: Mapping) -> dict:
    if "assetgroup_id" in payload:  # an asset type: a subcategory of its asset group
        psa_id = _id(payload, "asset type")
        what = f"asset type {psa_id}"
        name = _text(payload, "name", what, required=True)
        parent_id = id_text(payload.get("assetgroup_id"), f"{what} assetgroup_id")
        parent_name = _text(payload, "assetgroup_name", what, required=True)
        return {"psa_id": f"{SUBCATEGORY_PREFIX}{psa_id}", "name": name,
                "parent_psa_id": f"{CATEGORY_PREFIX}{parent_id}", "path": f"{parent_name}/{name}"}
    psa_id = _id(payload, "asset group")
    name = _text(payload, "name", f"asset group {psa_id}", required=True)
    return {"psa_id": f"{CATEGORY_PREFIX}{psa_id}", "name": name, "parent_psa_id": None, "path": name}


def _client_id(payload: Mapping, what: str) -> str | None:
    """The client a user or asset belongs to; Halo writes 0 or nothing for none."""
    value = payload.get("client_id")
    return None if value in (None, 0) else id_text(value, f"{what} client_id")


def _company(payload: Mapping) -> dict:
    psa_id = _id(payload, "client")
    what = f"client {psa_id}"
    kind = _text(payload, "customertype_new", what)
    return {
        "psa_id": psa_id,
        "name": _text(payload, "name", what, required=True),
        "identifier": _text(payload, "accountsid", what),
        "types": [kind] if kind else [],
        "status": "Inactive" if _flag(payload, "inactive") else "Active",
        "deleted": False,  # Halo deletes for good: a deleted client is simply gone
    }


def _role_names(payload: Mapping, what: str) -> list[str]:
    roles = payload.get("roles")
    if roles is None:
        return []
    if not isinstance(roles, list):
        raise RecordError(f"{what}: roles should be a list, got {type(roles).__name__}")
    names = []
    for item in roles:
        if not isinstance(item, Mapping):
            raise RecordError(f"{what}: each role should be an object, got {type(item).__name__}")
        name = _text(item, "name", f"{what} role")
        if name is None:
            raise RecordError(f"{what}: a role has no name")
        names.append(name)
    return names


def _person(payload: Mapping, what: str) -> tuple[str | None, str | None]:
    first = _text(payload, "firstname", what)
    last = _text(payload, "surname", what)
    if first is None and last is None:
        raise RecordError(f"{what}: name is missing (no firstname or surname)")
    return first, last


def _contact(payload: Mapping) -> dict:
    psa_id = _id(payload, "user")
    what = f"user {psa_id}"
    first, last = _person(payload, what)
    return {
        "psa_id": psa_id,
        "company_psa_id": _client_id(payload, what),
        "first_name": first,
        "last_name": last,
        "email": _email(_text(payload, "emailaddress", what), what),
        "types": _role_names(payload, what),
        "inactive": _flag(payload, "inactive"),
    }


def _product(payload: Mapping) -> dict:
    psa_id = _id(payload, "item")
    what = f"item {psa_id}"
    status = payload.get("status")
    return {
        "psa_id": psa_id,
        "sku": _text(payload, "internalreference", what),
        "name": _text(payload, "name", what, required=True),
        "category": _text(payload, "assetgroup_name", what),
        "subcategory": _text(payload, "assettype_name", what),
        "price": _number(payload, "baseprice", what),
        "cost": _number(payload, "costprice", what),
        "product_class": "Recurring" if _flag(payload, "isrecurringitem") else None,
        "inactive": status == 1 and not isinstance(status, bool),
    }


def _member(payload: Mapping) -> dict:
    psa_id = _id(payload, "agent")
    what = f"agent {psa_id}"
    first, last = _person(payload, what)
    return {
        "psa_id": psa_id,
        "identifier": _text(payload, "initials", what),
        "first_name": first,
        "last_name": last,
        "name": " ".join(part for part in (first, last) if part),
        "email": _email(_text(payload, "email", what), what),
        "inactive": _flag(payload, "isdisabled"),
    }


def _serial(payload: Mapping, what: str) -> str | None:
    serial = _text(payload, "key_field2", what)
    if serial is not None:
        return serial
    fields = payload.get("fields")
    if isinstance(fields, list):
        for field in fields:
            if isinstance(field, Mapping) and field.get("name") == "Serial Number":
                return _text(field, "value", f"{what} Serial Number")
    return None


def _asset(payload: Mapping) -> dict:
    psa_id = _id(payload, "asset")
    what = f"asset {psa_id}"
    name = _text(payload, "inventory_number", what) or _text(payload, "key_field", what)
    if name is None:
        raise RecordError(f"{what}: inventory_number is missing")
    return {
        "psa_id": psa_id,
        "company_psa_id": _client_id(payload, what),
        "name": name,
        "asset_type": _text(payload, "assettype_name", what),
        "serial_number": _serial(payload, what),
        "active": not _flag(payload, "inactive"),
    }


_NORMALIZERS = {
    "company_types": lambda payload: _named(payload, "client type"),
    "contact_types": lambda payload: _named(payload, "role"),
    "product_categories": _product_category,
    "companies": _company,
    "contacts": _contact,
    "products": _product,
    "members": _member,
    "assets": _asset,
    "spend": halo_spend.normalize_line,
}
