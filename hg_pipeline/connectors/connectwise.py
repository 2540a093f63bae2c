"""ConnectWise Manage (PSA) connector: raw pages out of the REST API, and their normalization.

`iter_pages(entity)` streams vendor payload pages for a canonical entity (see `ENDPOINTS`) by
the "counted_pages" strategy of `paginators.py`: several pages in flight at once (the `/count`
sibling tells how many pages there are) but yielded in order, Link headers past them; it raises
`IncompleteExtraction` at the end of a read whose pages do not add up (see `paging.py`);
`iter_ids` sweeps by keyset (`id>last`, so a deletion during the sweep shifts nothing); `normalize(entity, payload)` turns one payload into the record
shape of `hg_pipeline.entities.NORMALIZED_FIELDS`, or raises `RecordError` for a payload that
breaks a hard rule or does not fit the warehouse (see `records.py`; the caller quarantines it).
Page bodies are decoded with a nesting limit (`jsonsafe.py`): a record nested too deep
reaches `normalize` as an `UnreadableRecord`.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from urllib.parse import quote, urlsplit

import requests

from hg_pipeline.connectors import cw_spend, discovery
from hg_pipeline.connectors.auth import BasicAuth
from hg_pipeline.connectors.base import Endpoint, HttpConnector
from hg_pipeline.connectors.http import (
    DEFAULT_DEADLINE,
    Abandon,
    PsaAuthError,
    PsaError,
    PsaHttp,
    PsaUnreachable,
    shared_limiter,
    utc_text,
)
from hg_pipeline.connectors.jsonsafe import decode_json, decode_records
from hg_pipeline.connectors.paginators import Answer, Request, read, total
from hg_pipeline.connectors.records import (
    RecordError,
    normalized,
    email_address as _email,
    flag as _flag,
    id_text,
    number as _number,
    payload_id,
    ref as _ref,
    ref_id as _ref_id,
    ref_name as _ref_name,
    text_value as _text,
)
from hg_pipeline.connectors.registry import source

log = logging.getLogger("hg_pipeline.connectors")

CREDENTIAL_KEYS = source("connectwise").required_keys
DEFAULT_CODEBASE = "v4_6_release/"
API_VERSION = "2025.1"
MAX_PAGE_SIZE = 1000

# psa_id prefixes keep category and subcategory ids apart in one list.
CATEGORY_PREFIX = "cat-"
SUBCATEGORY_PREFIX = "sub-"


def _endpoint(entity: str, path: str, id_prefix: str = "") -> Endpoint:
    # Every list: /count then pages by number (Link headers when the count fails), the body a
    # JSON list, `lastUpdated` conditions for changes (psa-api-notes 1.4).
    # The id sweep: `id>last` pages in id order (a deletion during it shifts nothing).
    return Endpoint(entity, path, paginator="counted_pages", change_field="lastUpdated", id_prefix=id_prefix,
                    sweep="keyset_by_id")


# Canonical entity -> its endpoints (paths below /apis/3.0), read in this order.
ENDPOINTS: dict[str, tuple[Endpoint, ...]] = {
    "company_types": (_endpoint("company_types", "company/companies/types"),),
    "contact_types": (_endpoint("contact_types", "company/contacts/types"),),
    "product_categories": (_endpoint("product_categories", "procurement/categories", CATEGORY_PREFIX),
                           _endpoint("product_categories", "procurement/subcategories", SUBCATEGORY_PREFIX)),
    "companies": (_endpoint("companies", "company/companies"),),
    "contacts": (_endpoint("contacts", "company/contacts"),),
    "products": (_endpoint("products", "procurement/catalog"),),
    "members": (_endpoint("members", "system/members"),),
    "assets": (_endpoint("assets", "company/configurations"),),
}

# What a record of each entity is called in a quarantine reason.
_LABELS = {
    "company_types": "company type", "contact_types": "contact type", "product_categories": "product category",
    "companies": "company", "contacts": "contact", "products": "product", "members": "member",
    "assets": "configuration",
    "spend": "spend line",
}


class ConnectWiseConnector(HttpConnector):
    """Reads one ConnectWise Manage tenant.

    `base_url` is the site root (`https://na.myconnectwise.net`, or a simulator's
    `http://127.0.0.1:PORT`); the codebase is looked up at `/login/companyinfo/{company_id}`.
    An API root that already ends in `/apis/3.0` is used as is.
    `credentials` are plain values for `company_id`, `public_key`, `private_key`, `client_id`.
    """

    source = "connectwise"
    payload_id = staticmethod(payload_id)
    page_threads = "cw-page"  # the threads of its pages in flight (paginators.concurrently)
    spend_until: str | None = None  # the last month ("YYYY-MM") of the spend window; None: this month
    spend_months = cw_spend.SPEND_MONTHS

    def __init__(
        self,
        base_url: str,
        credentials: Mapping[str, str],
        *,
        page_size: int = 1000,
        concurrency: int = 4,
        requests_per_second: float | None = None,
        max_retries: int = 5,
        timeout: float = 30,
        deadline: float = DEFAULT_DEADLINE,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        since_inclusive: bool = False,
        http_options: Mapping[str, object] | None = None,  # more PsaHttp options (entity_deadline, reachability)
    ) -> None:
        missing = [key for key in CREDENTIAL_KEYS if not credentials.get(key)]
        if missing:
            raise ValueError(f"ConnectWise credentials lack {', '.join(missing)}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.concurrency = concurrency
        self.since_inclusive = since_inclusive
        self._company_id = credentials["company_id"]
        self.http = PsaHttp(
            self.base_url,
            headers={"Accept": f"application/vnd.connectwise.com+json; version={API_VERSION}"},
            auth=BasicAuth(f"{credentials['company_id']}+{credentials['public_key']}", credentials["private_key"],
                           headers={"clientId": credentials["client_id"]}),
            secrets=[credentials[key] for key in CREDENTIAL_KEYS],
            max_retries=max_retries,
            backoff=backoff,
            max_wait=max_wait,
            timeout=timeout,
            deadline=deadline,
            pool_size=concurrency + 2,
            rate_limiter=shared_limiter(self.base_url, requests_per_second),
            **(http_options or {}),
        )
        self._api_root: str | None = self.base_url + "/" if re.search(r"/apis/3\.0$", self.base_url) else None
        self._root_lock = threading.Lock()

    # -- discovery -----------------------------------------------------------------------

    @property
    def api_root(self) -> str:
        """`{base_url}/{codebase}apis/3.0/`, the codebase looked up once."""
        with self._root_lock:
            if self._api_root is None:
                codebase = discovery.remembered(discovery.key("connectwise-codebase", self.base_url, self._company_id),
                                                self._codebase)
                self._api_root = f"{self.base_url}/{codebase.strip('/')}/apis/3.0/"
            return self._api_root

    def _codebase(self) -> str:
        try:
            body, _ = self.http.get_json(f"{self.base_url}/login/companyinfo/{quote(self._company_id, safe='')}",
                                         decode=decode_json)
        except PsaUnreachable:
            raise
        except PsaError as error:
            log.info("ConnectWise company info unavailable (%s); using codebase %s", error, DEFAULT_CODEBASE)
            return DEFAULT_CODEBASE
        codebase = body.get("Codebase") if isinstance(body, dict) else None
        if not isinstance(codebase, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+/?", codebase):
            return DEFAULT_CODEBASE
        return codebase

    # -- reading -------------------------------------------------------------------------

    def supports_incremental(self, entity: str) -> bool:
        """Whether every endpoint of `entity` has a change field (all do: `lastUpdated`); spend is
        read whole when read (its lines depend on the month; `spend_changed_since` says whether)."""
        if entity == "spend":
            return False
        return all(endpoint.change_field for endpoint in _endpoints(entity))

    def spend_changed_since(self, since: datetime) -> str | None:
        """None when no agreement, invoice or product item changed after `since` (three
        one-record requests; the per-agreement additions cannot be asked: `cw_spend`)."""
        return cw_spend.changed_since(self, since)

    def iter_pages(self, entity: str, since: datetime | None = None, *, previous: int = 0,
                   resume: str | None = None) -> Iterator[list]:
        """Raw payload pages of `entity` (records changed after `since` when given), each a
        `Page` whose token resumes the read after it (keyset: the endpoint, and `id>last`).

        `previous`: how many records of `entity` the last extraction staged; a full read that
        gets nothing back without a readable count is then incomplete.
        """
        if entity == "spend":
            yield from cw_spend.spend_pages(self, cw_spend.window(self.spend_until, self.spend_months))
            return
        params: dict[str, object] = {}
        if since is not None:
            op = ">=" if self.since_inclusive else ">"
            params["conditions"] = f"lastUpdated{op}[{utc_text(since)}]"
        for _, page in read(self, _endpoints(entity), lambda endpoint: self._request(endpoint, params),
                            previous=previous if since is None else 0, resume=resume):
            yield page

    def iter_ids(self, entity: str, *, previous: int = 0) -> Iterator[str]:
        """Every psa_id of `entity` (an id-only sweep by keyset, for delete detection); a record
        whose id is not a valid id is left out."""
        sweep = self._largest_pages()
        pages = read(sweep, _endpoints(entity), lambda endpoint: sweep._request(endpoint, {"fields": "id"}),
                     previous=previous, sweep=True)
        for endpoint, page in pages:
            for record in page:
                try:
                    yield endpoint.id_prefix + id_text(record.get("id") if isinstance(record, Mapping) else None,
                                                       endpoint.path)
                except RecordError as error:
                    log.warning("id sweep: %s; left out", error)

    def count(self, entity: str) -> int | None:
        """How many records of `entity` the PSA lists (its `/count`s); None when it cannot say."""
        return total(self, _endpoints(entity), lambda endpoint: self._request(endpoint, {}))

    def _largest_pages(self):
        """This connector reading the vendor's largest pages (same session and rate budget):
        an id sweep's records are a few bytes each, so fewer requests cost nothing."""
        sweep = copy.copy(self)
        sweep.page_size = MAX_PAGE_SIZE
        return sweep

    def _request(self, endpoint: Endpoint, params: Mapping[str, object]) -> Request:
        return Request(self.api_root + endpoint.path, {**params, "orderBy": "id asc", "pageSize": self.page_size})

    # -- what the paginators ask of a source (see `paginators.PagedSource`) ------------------

    def counted(self, endpoint: Endpoint, request: Request) -> int | None:
        """The PSA's count (the `/count` sibling) for these conditions; None when it cannot be read."""
        conditions = {k: v for k, v in (request.params or {}).items() if k == "conditions"}
        try:
            body, _ = self.http.get_json(self.api_root + endpoint.path + "/count", conditions, decode=decode_json)
            count = int(body["count"])
            if count < 0 or isinstance(body["count"], bool):
                raise ValueError(f"count {count} is not a number of records")
        except (PsaAuthError, PsaUnreachable):
            raise
        except (PsaError, KeyError, TypeError, ValueError, OverflowError) as error:
            log.warning("GET %s/count failed (%s); following Link headers one page at a time", endpoint.path, error)
            return None
        return count

    def after(self, endpoint: Endpoint, request: Request, last_id: int) -> Request:
        conditions = " and ".join(c for c in ((request.params or {}).get("conditions"), f"id>{last_id}") if c)
        return request.with_params(conditions=conditions)

    def where(self, endpoint: Endpoint) -> str:
        return self.http.scrub(urlsplit(self.api_root + endpoint.path).path)

    def fetch(self, endpoint: Endpoint, request: Request, abandon: Abandon | None = None) -> Answer:
        """One page, and the request for the next: the Link header's rel="next" (same origin
        only) or, without a Link header, the next page number after a full page."""
        url, params = request.url, request.params
        body, headers = self.http.get_json(url, params, abandon=abandon, decode=decode_records)
        if not isinstance(body, list):
            path = urlsplit(url).path
            raise PsaError(f"GET {path}: expected a JSON list of records", status=200, url_path=path)
        link = headers.get("Link")
        if link is not None:  # the vendor's way: rel="next" until the last page
            nexts = [item.get("url") for item in requests.utils.parse_header_links(link) if item.get("rel") == "next"]
            return Answer(body, next=Request(self.http.link(nexts[0], url)) if nexts and nexts[0] else None)
        if params is not None and len(body) == self.page_size:  # no Link header: a full page may have a successor
            return Answer(body, next=request.with_params(page=int(params.get("page", 1)) + 1))
        return Answer(body)

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
    """The record's id: ConnectWise ids are positive integers."""
    return id_text(payload.get("id"), what)


def _type_names(payload: Mapping, what: str) -> list[str]:
    types = payload.get("types")
    if types is None:
        return []
    if not isinstance(types, list):
        raise RecordError(f"{what}: types should be a list, got {type(types).__name__}")
    names = []
    for item in types:
        if not isinstance(item, Mapping):
            raise RecordError(f"{what}: each type should be an object, got {type(item).__name__}")
        name = _text(item, "name", f"{what} type") or _text(item, "description", f"{what} type")
        if name is None:
            raise RecordError(f"{what}: a type has no name")
        names.append(name)
    return names


def _company_type(payload: Mapping) -> dict:
    psa_id = _id(payload, "company type")
    return {"psa_id": str(psa_id), "name": _text(payload, "name", f"company type {psa_id}", required=True)}


def _contact_type(payload: Mapping) -> dict:
    psa_id = _id(payload, "contact type")
    # ConnectWise calls a contact type's label `description`.
    name = _text(payload, "description", f"contact type {psa_id}") or _text(payload, "name", f"contact type {psa_id}")
    if name is None:
        raise RecordError(f"contact type {psa_id}: description is missing")
    return {"psa_id": str(psa_id), "name": name}


def _product_category(payload: Mapping) -> dict:
    if "category" in payload:  # a subcategory carries its parent category
        psa_id = _id(payload, "product subcategory")
        what = f"product subcategory {psa_id}"
        name = _text(payload, "name", what, required=True)
        parent = _ref(payload, "category", what)
        if parent is None:
            raise RecordError(f"{what}: category is missing")
        parent_id = _id(parent, f"{what} category")
        parent_name = _text(parent, "name", f"{what} category", required=True)
        return {"psa_id": f"{SUBCATEGORY_PREFIX}{psa_id}", "name": name,
                "parent_psa_id": f"{CATEGORY_PREFIX}{parent_id}", "path": f"{parent_name}/{name}"}
    psa_id = _id(payload, "product category")
    name = _text(payload, "name", f"product category {psa_id}", required=True)
    return {"psa_id": f"{CATEGORY_PREFIX}{psa_id}", "name": name, "parent_psa_id": None, "path": name}


def _company(payload: Mapping) -> dict:
    psa_id = _id(payload, "company")
    what = f"company {psa_id}"
    return {
        "psa_id": str(psa_id),
        "name": _text(payload, "name", what, required=True),
        "identifier": _text(payload, "identifier", what),
        "types": _type_names(payload, what),
        "status": _ref_name(payload, "status", what),
        "deleted": _flag(payload, "deletedFlag"),
    }


def _contact_email(payload: Mapping, what: str) -> str | None:
    items = payload.get("communicationItems")
    if items is None:
        return None
    if not isinstance(items, list):
        raise RecordError(f"{what}: communicationItems should be a list, got {type(items).__name__}")
    emails = []
    for item in items:
        if not isinstance(item, Mapping):
            raise RecordError(f"{what}: each communication item should be an object")
        type_ref = item.get("type") if isinstance(item.get("type"), Mapping) else {}
        if item.get("communicationType") == "Email" or (
                item.get("communicationType") is None and type_ref.get("name") == "Email"):
            value = _text(item, "value", what)
            if value is not None:
                emails.append((not item.get("defaultFlag"), value))
    if not emails:
        return None
    return _email(min(emails, key=lambda e: e[0])[1], what)  # the default one, else the first


def _contact(payload: Mapping) -> dict:
    psa_id = _id(payload, "contact")
    what = f"contact {psa_id}"
    first = _text(payload, "firstName", what)
    last = _text(payload, "lastName", what)
    if first is None and last is None:
        raise RecordError(f"{what}: name is missing (no firstName or lastName)")
    return {
        "psa_id": str(psa_id),
        "company_psa_id": _ref_id(payload, "company", what),
        "first_name": first,
        "last_name": last,
        "email": _contact_email(payload, what),
        "types": _type_names(payload, what),
        "inactive": _flag(payload, "inactiveFlag"),
    }


def _product(payload: Mapping) -> dict:
    psa_id = _id(payload, "product")
    what = f"product {psa_id}"
    return {
        "psa_id": str(psa_id),
        "sku": _text(payload, "identifier", what),
        "name": _text(payload, "description", what, required=True),
        "category": _ref_name(payload, "category", what),
        "subcategory": _ref_name(payload, "subcategory", what),
        "price": _number(payload, "price", what),
        "cost": _number(payload, "cost", what),
        "product_class": _text(payload, "productClass", what),
        "inactive": _flag(payload, "inactiveFlag"),
    }


def _member(payload: Mapping) -> dict:
    psa_id = _id(payload, "member")
    what = f"member {psa_id}"
    first = _text(payload, "firstName", what)
    last = _text(payload, "lastName", what)
    if first is None and last is None:
        raise RecordError(f"{what}: name is missing (no firstName or lastName)")
    email = _text(payload, "primaryEmail", what) or _text(payload, "officeEmail", what)
    return {
        "psa_id": str(psa_id),
        "identifier": _text(payload, "identifier", what),
        "first_name": first,
        "last_name": last,
        "name": " ".join(part for part in (first, last) if part),
        "email": _email(email, what),
        "inactive": _flag(payload, "inactiveFlag"),
    }


def _asset(payload: Mapping) -> dict:
    psa_id = _id(payload, "configuration")
    what = f"configuration {psa_id}"
    return {
        "psa_id": str(psa_id),
        "company_psa_id": _ref_id(payload, "company", what),
        "name": _text(payload, "name", what, required=True),
        "asset_type": _ref_name(payload, "type", what),
        "serial_number": _text(payload, "serialNumber", what),
        "active": _flag(payload, "activeFlag", default=True),
    }


_NORMALIZERS = {
    "company_types": _company_type,
    "contact_types": _contact_type,
    "product_categories": _product_category,
    "companies": _company,
    "contacts": _contact,
    "products": _product,
    "members": _member,
    "assets": _asset,
    "spend": cw_spend.normalize_line,
}
