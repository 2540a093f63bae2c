"""Autotask PSA connector: the zone lookup, POSTed queries paged by `nextPageUrl`, normalization.

Vendor facts: `../shared/psa-api-notes.md` section 3.

- zone: `GET /atservicesrest/v1.0/zoneInformation?user=` (no credential) gives the zone's REST
  root; every other call goes below `{zone}v1.0/`. The zone must be on the tenant's origin
  (credentials never leave it, see `origin.py`): a tenant's base URL is its zone host. The zone
  is looked up once per process and instance (`discovery.py`), and again once after a 401 (the tenant may have moved);
- auth: `HeaderAuth` with `ApiIntegrationCode`, `UserName`, `Secret`;
- reads: `POST {Entity}/query` with `{"filter", "MaxRecords" (<= 500), "IncludeFields"}`,
  the same body POSTed again to each `pageDetails.nextPageUrl` (same origin only): the
  "next_url" strategy of `paginators.py`; the PSA's count from `{Entity}/query/count` makes the
  completeness rules of `paging.py` apply. The id sweep is "keyset_by_id" (`id gt last`);
- limits: at most `THREADS` requests at once per (origin, integration code, entity) in this
  process, whatever the connectors; "Thread Threshold Exceeded" (whatever its status) is
  waited out like a 429;
- picklists (`{Entity}/entityInformation/fields`): company types (`companyType`), product
  categories (`productCategory`), configuration item types; contact types and product
  subcategories are the user-defined fields "Contact Type" and "Product Subcategory" (Autotask
  has neither), read from the contacts and products themselves;
- products are the `Products` and the `Services` (the recurring catalog contracts bill, an
  entity of its own): a service's psa_id is "svc-" + its id, its PSA category "Services"
  (Autotask gives services no category), listed among the product categories.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from hg_pipeline.connectors import autotask_spend, discovery
from hg_pipeline.connectors.spend_lines import SPEND_MONTHS, window
from hg_pipeline.connectors.auth import HeaderAuth
from hg_pipeline.connectors.base import Endpoint, HttpConnector, Page
from hg_pipeline.connectors.http import DEFAULT_DEADLINE, PsaAuthError, PsaError, PsaHttp, PsaUnreachable, shared_limiter
from hg_pipeline.connectors.jsonsafe import decode_json, decode_records
from hg_pipeline.connectors.origin import origin_of, shown_origin
from hg_pipeline.connectors.paginators import Answer, Request, read, total
from hg_pipeline.connectors.paging import Tally, nothing_back
from hg_pipeline.connectors.records import (
    RecordError,
    UnreadableRecord,
    normalized,
    email_address as _email,
    id_text,
    number as _number,
    payload_id,
    text_value as _text,
)
from hg_pipeline.connectors.registry import source

log = logging.getLogger("hg_pipeline.connectors")

CREDENTIAL_KEYS = source("autotask").required_keys
ZONE_LOOKUP = "/atservicesrest/v1.0/zoneInformation"
MAX_PAGE_SIZE = 500
THREADS = 3  # concurrent requests per integration code and entity (psa-api-notes 3.3)
THREAD_LIMIT_TEXT = "thread threshold exceeded"
THREAD_LIMIT_RETRIES = 10  # a busy endpoint is not a broken one: asked again this many times
CONTACT_TYPE_UDF = "Contact Type"
SUBCATEGORY_UDF = "Product Subcategory"
CATEGORY_PREFIX = "cat-"
SUBCATEGORY_PREFIX = "sub-"
SERVICE_PREFIX = autotask_spend.SERVICE_PREFIX  # a service's psa_id: apart from the products' ids
SERVICES_CATEGORY = "Services"  # the PSA category of every service (Autotask has none for them)
SERVICES_CATEGORY_ID = CATEGORY_PREFIX + "services"  # no picklist value is a word
ENDPOINT_KEY = "_endpoint"  # set on a service payload: the path it was read from
# Every query needs a condition: this one holds for every record.
EVERY_RECORD = {"op": "gte", "field": "id", "value": 0}

# paginators: "next_url" (POST {Entity}/query, nextPageUrl; the id sweep "keyset_by_id": `id gt
# last`), and two this connector reads itself: "picklist" (one field's values in
# entityInformation/fields), "udf_values" (distinct values of a UDF, from the records).
ENDPOINTS: dict[str, Endpoint] = {
    "company_types": Endpoint("company_types", "Companies", "picklist", "companyType"),
    "contact_types": Endpoint("contact_types", "Contacts", "udf_values", CONTACT_TYPE_UDF),
    "product_categories": Endpoint("product_categories", "Products", "udf_values", SUBCATEGORY_UDF),
    "companies": Endpoint("companies", "Companies", "next_url", "items", change_field="lastTrackedModifiedDateTime",
                          sweep="keyset_by_id"),
    "contacts": Endpoint("contacts", "Contacts", "next_url", "items", change_field="lastModifiedDate",
                         sweep="keyset_by_id"),
    "products": Endpoint("products", "Products", "next_url", "items", sweep="keyset_by_id"),  # no modified field
    "members": Endpoint("members", "Resources", "next_url", "items", sweep="keyset_by_id"),  # no modified field
    "assets": Endpoint("assets", "ConfigurationItems", "next_url", "items", change_field="lastModifiedTime",
                       sweep="keyset_by_id"),
}
# Endpoints read for an entity after its ENDPOINTS one (their ids kept apart by `id_prefix`).
SERVICES = Endpoint("products", "Services", "next_url", "items", change_field="lastModifiedDate",
                    id_prefix=SERVICE_PREFIX, sweep="keyset_by_id")
MORE_ENDPOINTS: dict[str, tuple[Endpoint, ...]] = {"products": (SERVICES,)}
# The picklists a normalizer turns from values into labels: (Autotask entity, field).
_PICKLISTS = {
    "companies": ("Companies", "companyType"),
    "products": ("Products", "productCategory"),
    "product_categories": ("Products", "productCategory"),
    "assets": ("ConfigurationItems", "configurationItemType"),
}

_LABELS = {
    "company_types": "company type", "contact_types": "contact type", "product_categories": "product category",
    "companies": "company", "contacts": "contact", "products": "product", "members": "resource",
    "assets": "configuration item",
    "spend": "spend line",
}

_slots_lock = threading.Lock()
_slots: dict[tuple[str, str, str], threading.BoundedSemaphore] = {}


def _slot(origin: str, integration_code: str, entity: str) -> threading.BoundedSemaphore:
    """The process-wide semaphore of one (origin, integration code, entity): Autotask counts
    threads per API tracking identifier and entity, whichever connector makes them."""
    with _slots_lock:
        return _slots.setdefault((origin, integration_code, entity), threading.BoundedSemaphore(THREADS))


class AutotaskConnector(HttpConnector):
    """Reads one Autotask tenant.

    `base_url` is the zone host's root (`https://webservices5.autotask.net`, or a simulator's
    `http://127.0.0.1:PORT`); the zone's REST root is looked up there. `credentials` are plain
    values for `username`, `secret`, `integration_code`. `concurrency` is capped at THREADS.
    """

    source = "autotask"
    spend_until: str | None = None  # the last month ("YYYY-MM") of the spend window; None: this month
    spend_months = SPEND_MONTHS

    @staticmethod
    def payload_id(payload: object) -> str | None:
        """The id a refused payload is filed under: a service's with its prefix."""
        found = payload_id(payload)
        return SERVICE_PREFIX + found if found is not None and _is_service(payload) else found

    def __init__(
        self,
        base_url: str,
        credentials: Mapping[str, str],
        *,
        page_size: int = MAX_PAGE_SIZE,
        concurrency: int = THREADS,
        requests_per_second: float | None = None,
        max_retries: int = 5,
        timeout: float = 30,
        deadline: float = DEFAULT_DEADLINE,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        since_inclusive: bool = False,
        http_options: Mapping[str, object] | None = None,
    ) -> None:
        missing = [key for key in CREDENTIAL_KEYS if not credentials.get(key)]
        if missing:
            raise ValueError(f"Autotask credentials lack {', '.join(missing)}")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self.concurrency = max(1, min(concurrency, THREADS))
        self.since_inclusive = since_inclusive
        self.max_retries = max_retries
        self._username = credentials["username"]
        self._integration_code = credentials["integration_code"]
        self.http = PsaHttp(
            self.base_url,
            auth=HeaderAuth({"ApiIntegrationCode": credentials["integration_code"],
                             "UserName": credentials["username"], "Secret": credentials["secret"]}),
            secrets=[credentials[key] for key in CREDENTIAL_KEYS],
            max_retries=max_retries,
            backoff=backoff,
            max_wait=max_wait,
            timeout=timeout,
            deadline=deadline,
            pool_size=THREADS + 2,
            rate_limiter=shared_limiter(self.base_url, requests_per_second),
            **(http_options or {}),
        )
        self._zone_lock = threading.Lock()
        self._zone: str | None = None
        self._zone_key = discovery.key("autotask-zone", self.http.origin, credentials["username"])
        self._picklists: dict[tuple[str, str], dict[str, str]] = {}

    # -- the zone ------------------------------------------------------------------------

    @property
    def api_root(self) -> str:
        """`{zone url}v1.0/`, the zone looked up once."""
        with self._zone_lock:
            if self._zone is None:
                self._zone = discovery.remembered(self._zone_key, self._lookup_zone)
            return self._zone

    def _lookup_zone(self) -> str:
        try:
            body, _ = self.http.request("GET", ZONE_LOOKUP, {"user": self._username}, authenticated=False,
                                        decode=decode_json)
        except PsaUnreachable:
            raise
        except PsaError as failed:
            if failed.status != 500 or "zone" not in str(failed).lower():
                raise
            # Autotask's answer to an unknown API user: refused credentials, as a 401 would be.
            raise PsaAuthError(f"{failed}; Autotask knows no zone for this API user (check the username)",
                               status=401, url_path=ZONE_LOOKUP) from None
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise PsaError(f"GET {ZONE_LOOKUP}: the zone answer holds no url", url_path=ZONE_LOOKUP)
        try:
            same = origin_of(url) == self.http.origin
        except ValueError:
            same = False
        if not same:
            raise PsaError(f"GET {ZONE_LOOKUP}: the zone is on another origin ({shown_origin(url)}); credentials are "
                           f"only sent to {self.http.origin} (set the tenant's base URL to its zone host)",
                           url_path=ZONE_LOOKUP)
        return url.rstrip("/") + "/v1.0/"

    def _call(self, entity: str, method: str, url: str, body: object = None, *, decode=decode_json):
        """One request on the zone, at most THREADS at once per entity; a 401 looks the zone up
        again and asks once more; "Thread Threshold Exceeded" is waited out like a 429."""
        rezoned = False
        waited = 0
        while True:
            try:
                with self._thread(entity):
                    return self.http.request(method, url, json=body, decode=decode)[0]
            except PsaAuthError as refused:
                if refused.status != 401 or rezoned:
                    raise
                rezoned = True
                old_root = self.api_root
                with self._zone_lock:
                    self._zone = None
                    discovery.forget(self._zone_key)
                url = self.api_root + url[len(old_root):] if url.startswith(old_root) else url
            except PsaError as failed:
                if THREAD_LIMIT_TEXT not in str(failed).lower() or isinstance(failed, PsaUnreachable) \
                        or waited >= THREAD_LIMIT_RETRIES:
                    raise
                # Jittered, so that the requests turned away together do not come back together.
                wait = min(self.http.backoff * 2 ** waited, self.http.max_wait) * random.uniform(0.5, 1.5)
                waited += 1
                log.warning("%s: thread threshold exceeded; asking again in %.2f s (%d of %d)",
                            urlsplit(url).path, wait, waited, THREAD_LIMIT_RETRIES)
                time.sleep(wait)

    @contextmanager
    def _thread(self, entity: str):
        slot = _slot(str(self.http.origin), self._integration_code, entity)
        with slot:
            yield

    # -- reading -------------------------------------------------------------------------

    def supports_incremental(self, entity: str) -> bool:
        if entity == "spend":  # read whole when read: its lines depend on the month
            return False
        return all(endpoint.change_field for endpoint in _endpoints(entity))

    def spend_changed_since(self, since: datetime) -> str | None:
        """Always a reason to read spend whole: its lists have no modified field (`autotask_spend`)."""
        return autotask_spend.changed_since(since)

    def iter_pages(self, entity: str, since: datetime | None = None, *, previous: int = 0,
                   resume: str | None = None) -> Iterator[list]:
        """Raw payload pages of `entity` (records changed after `since` when given and the
        entity has a modified field; else every record). Query pages come in id order, each a
        `Page` whose token resumes the read after it (keyset: `id gt last`)."""
        if entity == "spend":
            yield from autotask_spend.spend_pages(self, window(self.spend_until, self.spend_months))
            return
        endpoint = _endpoint(entity)
        if endpoint.paginator == "picklist":
            yield from self._picklist_pages(endpoint, previous)
            return
        if endpoint.paginator == "udf_values":
            yield from self._udf_pages(endpoint, previous)
            return
        if entity in _PICKLISTS:
            self._picklist(*_PICKLISTS[entity])  # read before the records, so a failure stops the read

        def conditions(endpoint: Endpoint) -> list:
            if since is not None and endpoint.change_field:
                return [{"op": "gte" if self.since_inclusive else "gt", "field": endpoint.change_field,
                         "value": _utc_text(since)}]
            return [EVERY_RECORD]

        for read_from, page in self._read(_endpoints(entity), conditions, [], previous if since is None else 0,
                                          resume=resume):
            if read_from.id_prefix:  # the normalizer and the quarantine must know where it came from
                page = Page([_tagged(payload, read_from) for payload in page], page.resume)
            yield page

    def iter_ids(self, entity: str, *, previous: int = 0) -> Iterator[str]:
        """Every psa_id of `entity` (an id-only sweep: IncludeFields ["id"], by keyset)."""
        endpoint = _endpoint(entity)
        if endpoint.paginator != "next_url":
            for page in self.iter_pages(entity, previous=previous):
                for payload in page:
                    yield str(payload["id"])
            return
        pages = self._largest_pages()._read(_endpoints(entity), lambda _: [EVERY_RECORD], ["id"], previous,
                                            sweep=True)
        for read_from, page in pages:
            for record in page:
                try:
                    yield read_from.id_prefix + id_text(record.get("id") if isinstance(record, Mapping) else None,
                                                        read_from.path)
                except RecordError as error:
                    log.warning("id sweep: %s; left out", error)

    def count(self, entity: str) -> int | None:
        """How many records of `entity` the PSA lists (`query/count`); None when it cannot say."""
        endpoints = _endpoints(entity)
        if any(endpoint.paginator != "next_url" for endpoint in endpoints):
            return None
        return total(self, endpoints, lambda endpoint: Request(self.api_root + f"{endpoint.path}/query",
                                                               body={"filter": [EVERY_RECORD]}))

    def _largest_pages(self):
        """This connector reading the vendor's largest pages (same session and rate budget):
        an id sweep's records are a few bytes each, so fewer requests cost nothing."""
        sweep = copy.copy(self)
        sweep.page_size = MAX_PAGE_SIZE
        return sweep

    def _query(self, endpoint: Endpoint, conditions: list, fields: list[str], previous: int, *,
               resume: str | None = None, sweep: bool = False) -> Iterator[Page]:
        """The pages of one query, by the endpoint's strategy (`sweep`: its sweep's)."""
        for _, page in self._read((endpoint,), lambda _: conditions, fields, previous, resume=resume, sweep=sweep):
            yield page

    def _read(self, endpoints: tuple[Endpoint, ...], conditions_of, fields: list[str], previous: int, *,
              resume: str | None = None, sweep: bool = False) -> Iterator[tuple[Endpoint, Page]]:
        """(endpoint, page) of the query of each endpoint in turn (`conditions_of(endpoint)`: its filter)."""

        def request_of(endpoint: Endpoint) -> Request:
            body: dict[str, object] = {"filter": conditions_of(endpoint), "MaxRecords": self.page_size}
            if fields:
                body["IncludeFields"] = fields
            return Request(self.api_root + f"{endpoint.path}/query", body=body)

        yield from read(self, endpoints, request_of, previous=previous, resume=resume, sweep=sweep)

    # -- what the paginators ask of a source (see `paginators.PagedSource`) ------------------

    def fetch(self, endpoint: Endpoint, request: Request, abandon=None) -> Answer:
        """One page of a query, and the same body to POST to its `nextPageUrl` (same origin only)."""
        answer = self._call(endpoint.path, "POST", request.url, request.body, decode=decode_records)
        path = urlsplit(request.url).path
        items = answer.get("items") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise PsaError(f"POST {path}: expected an object with an items list", status=200, url_path=path)
        details = answer.get("pageDetails") if isinstance(answer.get("pageDetails"), dict) else {}
        following = details.get("nextPageUrl")
        if not isinstance(following, str) or not following:
            return Answer(items)
        return Answer(items, next=Request(self.http.link(following, request.url), body=request.body))

    def counted(self, endpoint: Endpoint, request: Request) -> int | None:
        """The PSA's count (`{Entity}/query/count`) of the query's filter; None when it cannot be read."""
        try:
            body = self._call(endpoint.path, "POST", self.api_root + f"{endpoint.path}/query/count",
                              {"filter": request.body["filter"]})
            count = body["queryCount"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"queryCount {count!r} is not a number of records")
        except (PsaAuthError, PsaUnreachable):
            raise
        except (PsaError, KeyError, TypeError, ValueError) as error:
            log.warning("POST %s/query/count failed (%s); following nextPageUrl only", endpoint.path, error)
            return None
        return count

    def after(self, endpoint: Endpoint, request: Request, last_id: int) -> Request:
        body = dict(request.body)
        body["filter"] = [*body["filter"], {"op": "gt", "field": "id", "value": last_id}]
        return replace(request, body=body)

    def where(self, endpoint: Endpoint) -> str:
        return f"{urlsplit(self.api_root).path}{endpoint.path}/query"

    # -- picklists and user-defined fields -------------------------------------------------

    def _picklist(self, entity: str, field: str) -> dict[str, str]:
        """value -> label of one picklist field, read once per connector."""
        key = (entity, field)
        if key not in self._picklists:
            answer = self._call(entity, "GET", self.api_root + f"{quote(entity)}/entityInformation/fields")
            fields = answer.get("fields") if isinstance(answer, dict) else None
            found = next((f for f in fields or () if isinstance(f, dict) and f.get("name") == field), None)
            if found is None:
                path = f"{entity}/entityInformation/fields"
                raise PsaError(f"GET {path}: no field {field}", status=200, url_path=path)
            self._picklists[key] = {str(v.get("value")): v.get("label") for v in found.get("picklistValues") or ()
                                    if isinstance(v, dict) and v.get("value") is not None}
        return self._picklists[key]

    def _picklist_pages(self, endpoint: Endpoint, previous: int) -> Iterator[list]:
        values = self._picklist(endpoint.path, endpoint.data_selector)
        page = [{"id": value, "name": label} for value, label in values.items()]
        empty = nothing_back([Tally(received=len(page))], previous)
        if empty is not None:
            raise empty
        if page:
            yield page

    def _udf_pages(self, endpoint: Endpoint, previous: int) -> Iterator[list]:
        """Contact types: the distinct values of the UDF; product categories: the picklist, and
        each (category, subcategory UDF) pair found on a product."""
        fields = ["id", "userDefinedFields"] + (["productCategory"] if endpoint.entity == "product_categories" else [])
        found: dict[str, dict] = {}
        categories = self._picklist(*_PICKLISTS["product_categories"]) \
            if endpoint.entity == "product_categories" else {}
        for value, label in categories.items():
            found[CATEGORY_PREFIX + value] = {"id": CATEGORY_PREFIX + value, "name": label}
        if categories and SERVICES_CATEGORY not in categories.values():
            found[SERVICES_CATEGORY_ID] = {"id": SERVICES_CATEGORY_ID, "name": SERVICES_CATEGORY}
        for page in self._query(replace(endpoint, paginator="next_url"), [EVERY_RECORD], fields, 0):
            for record in page:
                if not isinstance(record, Mapping):
                    continue
                name = _udf(record, endpoint.data_selector)
                if not isinstance(name, str) or not name.strip():
                    continue
                if endpoint.entity == "contact_types":
                    found.setdefault(name, {"id": name, "name": name})
                    continue
                value = str(record.get("productCategory"))
                if value in categories:
                    psa_id = f"{SUBCATEGORY_PREFIX}{value}/{name}"
                    found.setdefault(psa_id, {"id": psa_id, "name": name,
                                              "category": {"id": CATEGORY_PREFIX + value, "name": categories[value]}})
        page = sorted(found.values(), key=lambda payload: payload["id"])
        empty = nothing_back([Tally(received=len(page))], previous)
        if empty is not None:
            raise empty
        if page:
            yield page

    # -- normalizing ---------------------------------------------------------------------

    def normalize(self, entity: str, payload: Mapping) -> dict:
        """The normalized record of one payload (keys: NORMALIZED_FIELDS[entity])."""
        if entity != "spend":
            _endpoint(entity)
        return normalized(entity, payload, lambda raw: _NORMALIZERS[entity](self, raw), _LABELS[entity])

    def _label(self, entity: str, payload: Mapping, field: str, what: str) -> str | None:
        value = payload.get(field)
        if value is None:
            return None
        labels = self._picklist(*_PICKLISTS[entity])
        if str(value) not in labels:
            raise RecordError(f"{what}: {field} {str(value)[:40]} is not a value of its picklist")
        return labels[str(value)]


def _endpoint(entity: str) -> Endpoint:
    try:
        return ENDPOINTS[entity]
    except KeyError:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENDPOINTS)}") from None


def _endpoints(entity: str) -> tuple[Endpoint, ...]:
    return (_endpoint(entity), *MORE_ENDPOINTS.get(entity, ()))


def _tagged(payload: object, endpoint: Endpoint) -> object:
    if isinstance(payload, Mapping):
        return {**payload, ENDPOINT_KEY: endpoint.path}
    if isinstance(payload, UnreadableRecord) and payload.psa_id is not None:
        return dataclasses.replace(payload, psa_id=endpoint.id_prefix + payload.psa_id)
    return payload


def _is_service(payload: object) -> bool:
    return isinstance(payload, Mapping) and payload.get(ENDPOINT_KEY) == SERVICES.path


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _udf(payload: Mapping, name: str):
    for field in payload.get("userDefinedFields") or ():
        if isinstance(field, Mapping) and field.get("name") == name:
            return field.get("value")
    return None


def _active(payload: Mapping, what: str) -> bool:
    """`isActive`: a boolean, or 0/1 on Contacts (psa-api-notes 3.5); missing means active."""
    value = payload.get("isActive")
    if value is None:
        return True
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise RecordError(f"{what}: isActive {str(value)[:40]} is neither true/false nor 0/1")


def _ref_id(payload: Mapping, key: str, what: str) -> str | None:
    value = payload.get(key)
    return None if value is None else id_text(value, f"{what} {key}")


def _names(payload: Mapping, what: str) -> tuple[str | None, str | None]:
    first, last = _text(payload, "firstName", what), _text(payload, "lastName", what)
    if first is None and last is None:
        raise RecordError(f"{what}: name is missing (no firstName or lastName)")
    return first, last


# --- normalizers (one payload; picklist labels from the connector) ---------------------------


def _company_type(connector: AutotaskConnector, payload: Mapping) -> dict:
    psa_id = _text(payload, "id", "company type", required=True)
    return {"psa_id": psa_id, "name": _text(payload, "name", f"company type {psa_id}", required=True)}


def _contact_type(connector: AutotaskConnector, payload: Mapping) -> dict:
    psa_id = _text(payload, "id", "contact type", required=True)
    return {"psa_id": psa_id, "name": _text(payload, "name", f"contact type {psa_id}", required=True)}


def _product_category(connector: AutotaskConnector, payload: Mapping) -> dict:
    psa_id = _text(payload, "id", "product category", required=True)
    what = f"product category {psa_id}"
    name = _text(payload, "name", what, required=True)
    parent = payload.get("category")
    if isinstance(parent, Mapping):
        parent_name = _text(parent, "name", f"{what} category", required=True)
        return {"psa_id": psa_id, "name": name, "parent_psa_id": _text(parent, "id", what, required=True),
                "path": f"{parent_name}/{name}"}
    return {"psa_id": psa_id, "name": name, "parent_psa_id": None, "path": name}


def _company(connector: AutotaskConnector, payload: Mapping) -> dict:
    psa_id = id_text(payload.get("id"), "company")
    what = f"company {psa_id}"
    kind = connector._label("companies", payload, "companyType", what)
    # Autotask deactivates companies, it does not delete them: inactive is a status.
    return {
        "psa_id": psa_id,
        "name": _text(payload, "companyName", what, required=True),
        "identifier": _text(payload, "companyNumber", what),
        "types": [kind] if kind else [],
        "status": "Active" if _active(payload, what) else "Inactive",
        "deleted": False,
    }


def _contact(connector: AutotaskConnector, payload: Mapping) -> dict:
    psa_id = id_text(payload.get("id"), "contact")
    what = f"contact {psa_id}"
    first, last = _names(payload, what)
    kind = _udf(payload, CONTACT_TYPE_UDF)
    return {
        "psa_id": psa_id,
        "company_psa_id": _ref_id(payload, "companyID", what),
        "first_name": first,
        "last_name": last,
        "email": _email(_text(payload, "emailAddress", what), what),
        "types": [str(kind).strip()] if isinstance(kind, str) and kind.strip() else [],
        "inactive": not _active(payload, what),
    }


def _product(connector: AutotaskConnector, payload: Mapping) -> dict:
    if _is_service(payload):
        return _service(payload)
    psa_id = id_text(payload.get("id"), "product")
    what = f"product {psa_id}"
    subcategory = _udf(payload, SUBCATEGORY_UDF)
    return {
        "psa_id": psa_id,
        "sku": _text(payload, "sku", what),
        "name": _text(payload, "name", what, required=True),
        "category": connector._label("products", payload, "productCategory", what),
        "subcategory": str(subcategory).strip() if isinstance(subcategory, str) and subcategory.strip() else None,
        "price": _number(payload, "unitPrice", what),
        "cost": _number(payload, "unitCost", what),
        "product_class": "Serialized" if payload.get("isSerialized") else None,
        "inactive": not _active(payload, what),
    }


def _service(payload: Mapping) -> dict:
    psa_id = SERVICE_PREFIX + id_text(payload.get("id"), "service")
    what = f"service {psa_id}"
    return {
        "psa_id": psa_id,
        "sku": None,  # services have none
        "name": _text(payload, "name", what, required=True),
        "category": SERVICES_CATEGORY,
        "subcategory": None,
        "price": _number(payload, "unitPrice", what),
        "cost": _number(payload, "unitCost", what),
        "product_class": "Service",
        "inactive": not _active(payload, what),
    }


def _member(connector: AutotaskConnector, payload: Mapping) -> dict:
    psa_id = id_text(payload.get("id"), "resource")
    what = f"resource {psa_id}"
    first, last = _names(payload, what)
    return {
        "psa_id": psa_id,
        "identifier": _text(payload, "userName", what),
        "first_name": first,
        "last_name": last,
        "name": " ".join(part for part in (first, last) if part),
        "email": _email(_text(payload, "email", what), what),
        "inactive": not _active(payload, what),
    }


def _asset(connector: AutotaskConnector, payload: Mapping) -> dict:
    psa_id = id_text(payload.get("id"), "configuration item")
    what = f"configuration item {psa_id}"
    return {
        "psa_id": psa_id,
        "company_psa_id": _ref_id(payload, "companyID", what),
        "name": _text(payload, "referenceTitle", what, required=True),
        "asset_type": connector._label("assets", payload, "configurationItemType", what),
        "serial_number": _text(payload, "serialNumber", what),
        "active": _active(payload, what),
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
    "spend": lambda connector, payload: autotask_spend.normalize_line(payload),
}
