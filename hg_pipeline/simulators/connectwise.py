"""A ConnectWise Manage (PSA) REST API simulator: a real HTTP server on 127.0.0.1.

It answers like the vendor for the endpoints the pipeline reads (see `ENDPOINTS`), under
`/v4_6_release/apis/3.0`, from a live `Dataset` (tests may edit the dataset's lists
between requests):

- auth: HTTP Basic `{company_id}+{public_key}` / `{private_key}` plus a `clientId` header;
  anything else is `401 {"code": "Unauthorized", ...}` (secrets are never echoed);
- paging: `page` (1-based) and `pageSize` (default 25, capped at `max_page_size`, 1000 like
  the vendor), records sorted by id unless `orderBy` says otherwise, RFC 5988 `Link`
  header with `first` / `prev` / `next` / `last`; with the request header
  `pagination-type: forward-only` it pages by `pageId` (keyset on id) and `Link` holds
  only `next`;
- `conditions` (`field op value` clauses joined by `and`; ops `= != < <= > >=`; values
  `[ISO datetime]`, numbers, `true`/`false`/`null`, `"text"`; `lastUpdated` and
  `dateEntered` read `_info`; nested fields with `/`, e.g. `company/id = 3`); anything else
  is `400 {"code": "InvalidObject", ...}`; `fields=id,name` projects top-level fields;
- `.../count` siblings answer `{"count": n}` for the same conditions;
- `GET /login/companyinfo/{companyId}` (no auth) tells the codebase, like the vendor;
- billing (`billing.py`): `/finance/agreements`, `/finance/agreements/{id}/additions` (404 for
  an unknown agreement), `/finance/invoices` and `/procurement/products` (items sold), paged and
  filtered like the other lists;
- misbehaviour on demand: `fail_next(n, status)` and `rate_limit = (max_requests,
  window_seconds)` (beyond it: `429` with an integer `Retry-After`);
- broken transfers on demand: `break_transfers(mode, path=..., page=..., first=K)` spoils the
  bodies of the first K requests of a path (or of every one until `mend_transfers()`): a body
  cut off before its Content-Length, a connection reset (RST) mid-body, a body dripped one
  byte at a time, or a body that cannot be decoded (bad gzip, bad UTF-8, bad JSON);
- pages that do not add up, on demand: `short_page(path, page, keep=N, first=K)` serves a page
  with only its first N records (0: an empty page), `lie_about_count(path, by)` makes `/count`
  say `by` more (or fewer) than there are; `mend_pages()` ends both;
- bad records on demand: `malformed[kind]` (records served as given) and `poison[kind]` (raw
  JSON texts, for what `json.dumps` cannot write, e.g. `nested_record(id, 990)`), both at the
  end of page 1 and counted.

The server, the controls above and the counters are `hg_pipeline.simulators.base`'s, the
same for every vendor's simulator.

With `tls=True` it serves HTTPS with a throw-away self-signed certificate for 127.0.0.1
(`ca_file` is its path): that is how the vendor's own client, pyconnectwise, which
hardcodes `https://`, can read it (give it `REQUESTS_CA_BUNDLE=sim.ca_file`).
"""

from __future__ import annotations

import base64
import hmac
import math
import re
import sys
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from hg_pipeline.simulators.base import (  # noqa: F401 - ApiError, nested_record, TRANSFER_FAULTS: public here too
    TRANSFER_FAULTS,
    ApiError,
    RawJson,
    SimulatorBase,
    checked_credentials,
    json_list,
    nested_record,
    run_simulator,
)
from hg_pipeline.simulators.datasets import Dataset

API_PREFIX = "/v4_6_release/apis/3.0"
CODEBASE = "v4_6_release/"
VERSION_CODE = "v2025.1"
DEFAULT_PAGE_SIZE = 25

# Accepted when the simulator is started without credentials (`hg-pipeline simulate
# connectwise` without --credential): company id "bluepeak", public key
# "demo-public-key", private key "demo-private-key", client id
# "00000000-0000-4000-8000-00000000c0de". Demo values only; they protect nothing.
DEMO_CREDENTIALS: dict[str, str] = {
    "company_id": "bluepeak",
    "public_key": "demo-public-key",
    "private_key": "demo-private-key",
    "client_id": "00000000-0000-4000-8000-00000000c0de",
}
CREDENTIAL_KEYS = ("company_id", "public_key", "private_key", "client_id")

# API path (below API_PREFIX) -> Dataset list.
ENDPOINTS: dict[str, str] = {
    "/company/companies": "companies",
    "/company/companies/types": "company_types",
    "/company/contacts": "contacts",
    "/company/contacts/types": "contact_types",
    "/procurement/categories": "categories",
    "/procurement/subcategories": "subcategories",
    "/procurement/catalog": "catalog",
    "/system/members": "members",
    "/company/configurations": "configurations",
    "/company/configurations/types": "configuration_types",
    "/finance/agreements": "agreements",
    "/finance/invoices": "invoices",
    "/procurement/products": "product_items",
}
# An agreement's additions: `/finance/agreements/{id}/additions` (and its /count).
_ADDITIONS = re.compile(r"/finance/agreements/(?P<id>\d+)/additions(?P<count>/count)?")


# --- conditions ------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"""\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)\s*
        (?P<op>>=|<=|!=|=|<|>)\s*
        (?P<value>\[[^\]]*\]|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)\s*$""",
    re.VERBOSE | re.IGNORECASE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_INFO_FIELDS = {"lastupdated": "lastUpdated", "dateentered": "dateEntered"}


def _cw_datetime(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "InvalidObject", f"conditions: {text!r} is not a valid date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _field_getter(path: str):
    parts = path.split("/")
    if len(parts) == 1 and parts[0].lower() in _INFO_FIELDS:
        key = _INFO_FIELDS[parts[0].lower()]
        return lambda record: (record.get("_info") or {}).get(key)

    def get(record):
        value = record
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return get


_OPS = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and b is not None and a < b,
    "<=": lambda a, b: a is not None and b is not None and a <= b,
    ">": lambda a, b: a is not None and b is not None and a > b,
    ">=": lambda a, b: a is not None and b is not None and a >= b,
}


_ID_FLOOR = re.compile(r"(?:^|\band\s+)id\s*>\s*(?P<id>\d+)\s*(?:$|and\b)", re.IGNORECASE)


def parse_conditions(text: str):
    """A predicate for a `conditions` string, or an ApiError(400) for what it can't read."""
    clauses = []
    for part in _AND.split(text.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise ApiError(400, "InvalidObject", f"conditions: cannot parse {part.strip()!r}")
        raw = match["value"]
        field = match["field"]
        if raw.startswith("["):
            value = _cw_datetime(raw[1:-1])
            getter = _field_getter(field)

            def get(record, getter=getter):  # stored timestamps may be in any ISO form
                stored = getter(record)
                return _cw_datetime(stored) if isinstance(stored, str) and not stored.endswith("Z") else stored
        else:
            if raw.startswith('"'):
                value = raw[1:-1].replace('\\"', '"')
            elif raw.lower() in ("true", "false"):
                value = raw.lower() == "true"
            elif raw.lower() == "null":
                value = None
            else:
                value = float(raw) if "." in raw else int(raw)
            get = _field_getter(field)
        op = _OPS[match["op"]]
        clauses.append((get, op, value))

    def matches(record: dict) -> bool:
        for get, op, value in clauses:
            try:
                if not op(get(record), value):
                    return False
            except TypeError:  # e.g. comparing a string with a number
                return False
        return True

    return matches


# --- the simulator ----------------------------------------------------------------------


class ConnectWiseSimulator(SimulatorBase):
    """A ConnectWise Manage API on 127.0.0.1 serving `dataset` (see the module docstring).

    `credentials` holds plain values for `company_id`, `public_key`, `private_key` and
    `client_id`; None means `DEMO_CREDENTIALS`. Use as a context manager or call
    `start()` / `stop()`; the controls (failures, rate limit, broken transfers, short pages,
    counters) are `SimulatorBase`'s.
    """

    api_prefix = API_PREFIX
    server_version = "ConnectWiseSimulator/1.0"
    name = "cw"
    extra_headers = {"api-current-version": VERSION_CODE.lstrip("v")}

    def __init__(
        self,
        dataset: Dataset,
        *,
        credentials: dict[str, str] | None = None,
        port: int = 0,
        max_page_size: int = 1000,
        rate_limit: tuple[int, float] | None = None,
        tls: bool = False,
        verbose: bool = False,
    ) -> None:
        credentials = checked_credentials(credentials, DEMO_CREDENTIALS, CREDENTIAL_KEYS)
        super().__init__(dataset, port=port, rate_limit=rate_limit, tls=tls, verbose=verbose)
        self.max_page_size = max_page_size
        self._credentials = credentials
        self._additions_index: tuple[list[dict], list[dict], dict[int, list[dict]]] | None = None
        self._expected_auth = "Basic " + base64.b64encode(
            f"{credentials['company_id']}+{credentials['public_key']}:{credentials['private_key']}".encode()
        ).decode("ascii")

    def error_body(self, error: ApiError) -> dict:
        return {"code": error.code, "message": error.message, "errors": None}

    # -- answering -----------------------------------------------------------------------

    def _answer(self, request) -> tuple[int, object, dict[str, str]]:
        if request.command != "GET":
            raise ApiError(405, "MethodNotAllowed", "This simulator is read-only", {"Allow": "GET"})
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/") or "/"
        if path.startswith("/login/companyinfo/"):
            return 200, self._company_info(path.rsplit("/", 1)[1], request), {}
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, "NotFound", f"{path} is not an API path")
        endpoint = path[len(API_PREFIX):]
        self._count(endpoint)
        self._authenticate(request)
        counting = endpoint.endswith("/count")
        kind = ENDPOINTS.get(endpoint[: -len("/count")] if counting else endpoint)
        agreement = _ADDITIONS.fullmatch(endpoint)
        if agreement:
            kind = "agreement_additions"
            if int(agreement["id"]) not in self._additions_by_agreement():
                raise ApiError(404, "NotFound", f"Agreement {agreement['id']} not found")
        if kind is None:
            raise ApiError(404, "NotFound", f"{endpoint} is not a known endpoint")
        try:
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        except ValueError:
            raise ApiError(400, "InvalidObject", "query string cannot be parsed") from None
        return self._list(kind, endpoint, query, request, counting,
                          parent=int(agreement["id"]) if agreement else None)

    def _additions_by_agreement(self) -> dict[int, list[dict]]:
        """Agreement id -> its additions (sorted by id), for every agreement: looked up as the
        vendor's index would, not by a scan per request (the N+1 reads of a ten-times MSP
        made 15,500 scans of 150,000 additions). Built again when either list changed."""
        agreements, _ = self._snapshot("agreements")
        additions, _ = self._snapshot("agreement_additions")
        cached = self._additions_index
        if cached is None or cached[0] is not agreements or cached[1] is not additions:
            index: dict[int, list[dict]] = {a["id"]: [] for a in agreements}
            for addition in additions:
                if addition["agreementId"] in index:
                    index[addition["agreementId"]].append(addition)
            cached = self._additions_index = (agreements, additions, index)
        return cached[2]

    def _authenticate(self, request) -> None:
        given = request.headers.get("Authorization", "")
        client_id = request.headers.get("clientId", "")
        if not hmac.compare_digest(given.encode(), self._expected_auth.encode()):
            raise ApiError(401, "Unauthorized", "Authentication failed: invalid or missing API keys")
        if not hmac.compare_digest(client_id.encode(), self._credentials["client_id"].encode()):
            raise ApiError(401, "Unauthorized", "Authentication failed: a valid clientId header is required")

    def _company_info(self, company_id: str, request) -> dict:
        host = request.headers.get("Host") or f"127.0.0.1:{self.port}"
        return {
            "CompanyName": company_id,
            "Codebase": CODEBASE,
            "VersionCode": VERSION_CODE,
            "VersionNumber": "v4.6.2025.1",
            "CompanyID": company_id,
            "IsCloud": False,
            "SiteUrl": host,
        }

    def _list(self, kind: str, endpoint: str, query: dict[str, str], request, counting: bool,
              parent: int | None = None):
        conditions = query.get("conditions", "").strip()
        predicate = parse_conditions(conditions) if conditions else None
        order = self._order(query.get("orderBy", "").strip())
        forward_only = request.headers.get("pagination-type", "").lower() == "forward-only"
        if forward_only and order is not None and order != ("id", False):
            raise ApiError(400, "InvalidObject", "orderBy is not allowed with forward-only pagination")
        if parent is None:
            records, ids = self._snapshot(kind)
        else:  # one agreement's additions
            records = self._additions_by_agreement()[parent]
            ids = [r["id"] for r in records]
        floor = _ID_FLOOR.search(conditions)
        if floor:  # `id>N` starts past N at once (ids are sorted), as the vendor's index would
            start = self._after(ids, int(floor["id"]))
            records, ids = records[start:], ids[start:]
            if floor.group(0).strip() == conditions:  # nothing else to check
                predicate = None
        if predicate is not None:
            records = [r for r in records if predicate(r)]
            ids = None
        malformed = self.malformed.get(kind, [])
        poison = self.poison.get(kind, [])
        if counting:
            lie = self._count_lie(endpoint[: -len("/count")])
            return 200, {"count": len(records) + len(malformed) + len(poison) + lie}, {}
        if order is not None and order != ("id", False):
            records, ids = self._sorted(records, order), None
        page_size = self._int(query, "pageSize", DEFAULT_PAGE_SIZE, minimum=1)
        page_size = min(page_size, self.max_page_size)
        keep = {k: v for k, v in query.items() if k not in ("page", "pageSize", "pageId")}
        if forward_only:
            page_id = self._int(query, "pageId", 0, minimum=0)
            start = self._after(ids if ids is not None else [r["id"] for r in records], page_id)
            chunk = records[start:start + page_size]
            links = {}
            if start + page_size < len(records):
                links["next"] = {"pageSize": page_size, "pageId": chunk[-1]["id"]}
        else:
            page = self._int(query, "page", 1, minimum=1)
            last_page = max(1, math.ceil(len(records) / page_size))
            chunk = records[(page - 1) * page_size: page * page_size]
            if page == 1 and malformed:
                chunk = chunk + malformed
            chunk = self._shortened(endpoint, page, chunk)
            links = {}
            if page > 1:
                links["first"] = {"pageSize": page_size, "page": 1}
                links["prev"] = {"pageSize": page_size, "page": min(page - 1, last_page)}
            if page < last_page:
                links["next"] = {"pageSize": page_size, "page": page + 1}
                links["last"] = {"pageSize": page_size, "page": last_page}
        fields = query.get("fields", "").strip()
        if fields:
            chunk = self._project(chunk, fields)
        if poison and not forward_only and page == 1:
            chunk = RawJson(json_list(chunk, poison))
        host = request.headers.get("Host") or f"127.0.0.1:{self.port}"
        site = f"{'https' if self._tls else 'http'}://{host}{API_PREFIX}{endpoint}"
        link = ", ".join(
            # page / pageId last, as the vendor does (clients read `page=N>` with a regex)
            f'<{site}/?{urlencode({**keep, **params}, quote_via=quote)}>; rel="{rel}"'
            for rel, params in links.items()
        )
        return 200, chunk, {"Link": link}

    @staticmethod
    def _order(text: str) -> tuple[str, bool] | None:
        if not text:
            return None
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_/]*)(?:\s+(asc|desc))?", text, re.IGNORECASE)
        if not match:
            raise ApiError(400, "InvalidObject", f"orderBy: cannot parse {text!r}")
        return match[1], (match[2] or "asc").lower() == "desc"

    @staticmethod
    def _sorted(records: list[dict], order: tuple[str, bool]) -> list[dict]:
        field, descending = order
        get = _field_getter(field)

        def key(record):
            value = get(record)
            return (value is None, value if isinstance(value, (int, float, str)) else str(value), record["id"])

        return sorted(records, key=key, reverse=descending)

    @staticmethod
    def _project(records: list[dict], fields: str) -> list[dict]:
        names = [name.strip() for name in fields.split(",") if name.strip()]
        if not names:
            return records
        if names == ["id"]:
            return [{"id": r["id"]} if "id" in r else {} for r in records]
        return [{name: r[name] for name in names if name in r} for r in records]

# --- command line ------------------------------------------------------------------------


def run_forever(port: int, dataset_name: str = "small", seed: int = 1,
                credentials: dict[str, str] | None = None, *, credentials_source: str | None = None,
                tls: bool = False) -> None:
    """Serve until Ctrl-C. `credentials`: resolved plain values, or None for the demo ones.

    Prints one line with the URL and where the accepted credentials come from (never the
    secret values themselves, except the public demo ones).
    """
    run_simulator(ConnectWiseSimulator, "ConnectWise", DEMO_CREDENTIALS, port, dataset_name, seed, credentials,
                  credentials_source, tls)


def serve(source: str, port: int, dataset: str = "small", seed: int = 1,
          credentials: dict[str, str] | None = None) -> None:
    """Entry point for `hg-pipeline simulate SOURCE ...`; only `connectwise` exists so far."""
    if source != "connectwise":
        raise ValueError(f"no simulator for source {source} yet")
    run_forever(port, dataset, seed, credentials)


def main(argv: list[str] | None = None) -> int:
    """`python -m hg_pipeline.simulators.connectwise --port P [--dataset D] [--seed N]
    [--credential KEY=env:VAR ...]`"""
    import argparse

    from hg_pipeline.connectors.credentials import CredentialError, parse_credential_args, resolve_credentials

    parser = argparse.ArgumentParser(prog="connectwise-simulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dataset", choices=("small", "large"), default="small")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--credential", action="append", default=[], metavar="KEY=env:VAR")
    args = parser.parse_args(argv)
    credentials = None
    source = None
    if args.credential:
        try:
            refs = parse_credential_args(args.credential)
            credentials = resolve_credentials(refs, CREDENTIAL_KEYS)
        except CredentialError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        source = "credentials from " + ", ".join(f"{k}={v}" for k, v in sorted(refs.items()))
    run_forever(args.port, args.dataset, args.seed, credentials, credentials_source=source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
