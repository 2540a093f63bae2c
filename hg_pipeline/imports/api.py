"""The HTTP import API (`hg-pipeline serve-import-api`): FastAPI served by uvicorn.

A client opens a batch, POSTs records to it entity by entity, then commits it:

    POST /v1/batches                      {"partial": false}       -> 201 {"batch_id", "status": "open"}
    POST /v1/batches/{id}/{entity}        [records] or {"records": [...]}  -> {"accepted": n}
    POST /v1/batches/{id}/commit          stages the batch         -> {"status": "committed", "staged", ...}
    GET  /v1/batches/{id}                 status, landed and staged counts
    GET  /v1/schemas/{entity}             the JSON Schema of one record
    GET  /health, GET /openapi.json       without a token

The bearer token names the tenant (`tokens.py`); a batch of another tenant does not exist for
it (404). Records are validated exactly as files are (`validate.check`): one bad record and
nothing of the request is kept. POSTed records wait in `import_records` until the commit
stages them through the extract stage (`batches.commit_landed`); the `import_batches` sensor
then starts the tenant's sync, so no sync ever sees half a batch.

Every POST may carry an `Idempotency-Key`: the first request with it claims the key (a row in
`import_requests`, inserted before any work, so two concurrent copies never both run), and a
retry gets the stored answer instead of running again.

Endpoints are plain `def`s: FastAPI runs them in its thread pool, so a long commit never
blocks the event loop. Only reading the body (with its size limit) is async.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError

from hg_pipeline import secrets
from hg_pipeline.imports import batches, formats, tokens, validate
from hg_pipeline.imports.formats import IMPORT_ENTITIES
from hg_pipeline.imports.normalize import record_key
from hg_pipeline.warehouse import db, locks, outage
from hg_pipeline.warehouse.tables import import_requests

log = logging.getLogger(__name__)

MAX_BODY_ENV = "HG_IMPORT_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_RECORDS = 50_000  # per request: more go in several POSTs to the same batch
MAX_ERRORS = 1_000  # listed in one 422; `error_count` has them all
LAND_LOCK_SECONDS = 5.0  # a POST of records waits this long for a commit of its batch, then 409
COMMIT_LOCK_SECONDS = 30.0  # a commit waits this long for POSTs in flight on its batch
PENDING = 0  # import_requests.status_code of a request still running
STALE_PENDING = timedelta(minutes=15)  # a claim older than this belongs to a request that died

RECORDS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "description": "The records of the entity: an array, or an object with `records`. Each record "
                   "follows GET /v1/schemas/{entity}.",
    "oneOf": [{"type": "array", "items": {"type": "object"}, "maxItems": MAX_RECORDS},
              {"type": "object", "properties": {"records": {"type": "array", "items": {"type": "object"},
                                                            "maxItems": MAX_RECORDS}},
               "required": ["records"], "additionalProperties": False}]}}}}}
BATCH_BODY = {"requestBody": {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": False,
    "properties": {"partial": {"type": "boolean", "default": False,
                               "description": "true: only upsert; false: the batch is the whole truth for "
                                              "each entity it holds (what it lacks is soft-deleted)"}}}}}}}


class ServeError(OSError):
    """The API cannot start (port taken, bad setting, warehouse without schema); the message is
    one line. An OSError, as a taken port is: the CLI answers it with one line and exit 2."""


class ApiError(Exception):
    """An answer other than success: status, one-line detail and maybe more fields."""

    def __init__(self, status: int, detail: str, **extra) -> None:
        super().__init__(detail)
        self.status, self.detail, self.extra = status, detail, extra

    def content(self) -> dict:
        return {"detail": self.detail, **self.extra}


def max_body_bytes() -> int:
    raw = os.environ.get(MAX_BODY_ENV)
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ServeError(f"{MAX_BODY_ENV}={raw!r} is not a number of bytes") from None
    if value < 1:
        raise ServeError(f"{MAX_BODY_ENV} must be at least 1 byte")
    return value


def create_app(database_url: str, *, body_limit: int | None = None) -> FastAPI:
    """The import API on the warehouse at `database_url` (its schema must be current)."""
    from hg_pipeline.warehouse.schema import outdated

    engine = db.connect(database_url)
    why = outdated(engine)
    if why:
        raise ServeError(f"the warehouse at {db.safe_url(database_url)} {why}: run `hg-pipeline db upgrade`")
    limit = body_limit or max_body_bytes()
    app = FastAPI(title="HighGround import API", version="1",
                  description="Push companies, contacts, products, members, assets and spend lines of a "
                              "tenant without a PSA: open a batch, POST records, commit.")
    app.add_middleware(_OneLineErrors)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_error)
    bearer = HTTPBearer(auto_error=False, description="An import API token: `hg-pipeline tenant token TENANT`.")

    def tenant(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        if credentials is None:
            raise ApiError(401, "missing bearer token: send Authorization: Bearer <token>")
        tenant_id = tokens.tenant_of(engine, credentials.credentials)
        if tenant_id is None:
            raise ApiError(401, "invalid or revoked import API token")
        return tenant_id

    async def body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the body is {int(declared):,} bytes, over the {limit:,} allowed; "
                                "send the records in several requests")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the body is over the {limit:,} bytes allowed; send the records in "
                                    "several requests")
            chunks.append(chunk)
        return b"".join(chunks)

    def answer(tenant_id: str, request: Request, raw: bytes, work: Callable[[], tuple[int, dict]]) -> JSONResponse:
        """Run `work` once per Idempotency-Key (when the request has one) and answer."""
        key = request.headers.get("idempotency-key")
        if key is None:
            status, content = _outcome(work)
            return JSONResponse(content, status)
        if not (1 <= len(key) <= 128 and key.isascii() and key.isprintable()):
            raise ApiError(400, "Idempotency-Key must be 1 to 128 printable ASCII characters")
        fingerprint = hashlib.sha256(f"{request.method} {request.url.path}\n".encode()
                                     + hashlib.sha256(raw).digest()).hexdigest()
        stored = _claim(engine, tenant_id, key, fingerprint)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise ApiError(422, "Idempotency-Key reused for a different request")
            if stored.status_code == PENDING:
                raise ApiError(409, "a request with this Idempotency-Key is still running; retry later")
            return JSONResponse(json.loads(stored.response), stored.status_code,
                                headers={"Idempotent-Replayed": "true"})
        try:
            status, content = _outcome(work)
        except BaseException:
            _forget(engine, tenant_id, key)  # it did nothing lasting: a retry may run it again
            raise
        if status >= 500:
            _forget(engine, tenant_id, key)
        else:
            with engine.begin() as conn:
                conn.execute(update(import_requests).where(
                    import_requests.c.tenant_id == tenant_id, import_requests.c.idempotency_key == key)
                    .values(status_code=status, response=json.dumps(content)))
        return JSONResponse(content, status)

    def own_batch(tenant_id: str, batch_id: int):
        row = batches.batch_row(engine, tenant_id, batch_id)
        if row is None:  # another tenant's batch does not exist for this one
            raise ApiError(404, f"no import batch {batch_id}")
        return row

    @app.get("/health", tags=["service"])
    def health():
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy", said in one line
            log.warning("health: %s", secrets.scrub(outage.describe(exc, engine)))
            return JSONResponse({"detail": "the warehouse does not answer"}, 503)
        return {"status": "ok"}

    @app.get("/v1/schemas/{entity}", tags=["records"])
    def schema(entity: str, tenant_id: str = Depends(tenant)):
        return formats.json_schema(_entity(entity))

    @app.post("/v1/batches", status_code=201, tags=["batches"], openapi_extra=BATCH_BODY)
    def open_batch(request: Request, tenant_id: str = Depends(tenant), raw: bytes = Depends(body)):
        def work():
            data = _parse(raw) if raw.strip() else {}
            if not isinstance(data, dict) or set(data) - {"partial"}:
                raise ApiError(422, 'the body must be an object like {"partial": false}')
            partial = data.get("partial", False)
            if not isinstance(partial, bool):
                raise ApiError(422, "partial must be true or false")
            batch_id = batches.open_batch(engine, tenant_id, "api", partial)
            return 201, {"batch_id": batch_id, "status": "open", "partial": partial}
        return answer(tenant_id, request, raw, work)

    @app.get("/v1/batches/{batch_id}", tags=["batches"])
    def batch_status(batch_id: int, tenant_id: str = Depends(tenant)):
        row = own_batch(tenant_id, batch_id)
        return {"batch_id": batch_id, "status": row["status"], "partial": row["partial"], "origin": row["origin"],
                "created_at": row["created_at"].isoformat(),
                "committed_at": row["committed_at"].isoformat() if row["committed_at"] else None,
                "landed": batches.landed_counts(engine, batch_id),
                "staged": json.loads(row["counts"]) if row["counts"] else {}, "error": row["error"]}

    # Before the entity route: "commit" would match {entity} too.
    @app.post("/v1/batches/{batch_id}/commit", tags=["batches"])
    def commit(batch_id: int, request: Request, tenant_id: str = Depends(tenant), raw: bytes = Depends(body)):
        def work():
            try:
                with locks.held(engine, _batch_lock(batch_id), wait_seconds=COMMIT_LOCK_SECONDS):
                    row = own_batch(tenant_id, batch_id)
                    if row["status"] != "open":
                        raise ApiError(409, f"import batch {batch_id} is {row['status']}, not open")
                    if not batches.landed_counts(engine, batch_id):
                        raise ApiError(422, f"import batch {batch_id} holds no records: POST records before "
                                            "committing it")
                    result = batches.commit_landed(engine, tenant_id, batch_id)
            except locks.LockBusy:
                raise ApiError(409, f"import batch {batch_id} is busy with other requests; retry later") from None
            except batches.BatchError as exc:
                raise ApiError(409, str(exc).splitlines()[0]) from None
            return 200, {"batch_id": batch_id, "status": "committed", "partial": result.partial,
                         "staged": result.staged, "vanished": result.vanished}
        return answer(tenant_id, request, raw, work)

    @app.post("/v1/batches/{batch_id}/{entity}", tags=["records"], openapi_extra=RECORDS_BODY)
    def post_records(batch_id: int, entity: str, request: Request, tenant_id: str = Depends(tenant),
                     raw: bytes = Depends(body)):
        def work():
            _entity(entity)
            own_batch(tenant_id, batch_id)  # before reading the body: another tenant's batch is not there
            records = _checked(entity, _records(_parse(raw)))
            try:
                with locks.held(engine, _batch_lock(batch_id), wait_seconds=LAND_LOCK_SECONDS):
                    row = own_batch(tenant_id, batch_id)
                    if row["status"] != "open":
                        raise ApiError(409, f"import batch {batch_id} is {row['status']}, not open")
                    accepted = batches.land_records(engine, batch_id, entity, records)
            except locks.LockBusy:
                raise ApiError(409, f"import batch {batch_id} is being committed") from None
            return 200, {"accepted": accepted}
        return answer(tenant_id, request, raw, work)

    return app


def serve(database_url: str, port: int, host: str = "127.0.0.1") -> None:
    """Serve the import API until interrupted."""
    import uvicorn

    app = create_app(database_url)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}") from None
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"import API on http://{shown}:{sock.getsockname()[1]} (OpenAPI at /openapi.json); Ctrl-C stops it",
          flush=True)
    # log_config=None: uvicorn logs through the command's logging (its level, secrets scrubbed).
    uvicorn.Server(uvicorn.Config(app, log_config=None, server_header=False)).run(sockets=[sock])


# --- helpers -----------------------------------------------------------------------------

def _outcome(work: Callable[[], tuple[int, dict]]) -> tuple[int, dict]:
    try:
        return work()
    except ApiError as exc:
        return exc.status, exc.content()


def _batch_lock(batch_id: int) -> str:
    return f"import-batch:{batch_id}"


def _entity(entity: str) -> str:
    if entity not in IMPORT_ENTITIES:
        raise ApiError(404, f"{entity!r} is not an import entity; expected one of {', '.join(IMPORT_ENTITIES)}")
    return entity


def _parse(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ApiError(400, "the body is not JSON records: nested too deeply") from None


def _records(data: object) -> list:
    if isinstance(data, dict) and set(data) == {"records"}:
        data = data["records"]
    if not isinstance(data, list):
        raise ApiError(422, 'the body must be a JSON array of records or {"records": [...]}')
    if len(data) > MAX_RECORDS:
        raise ApiError(413, f"{len(data):,} records in one request, over the {MAX_RECORDS:,} allowed; "
                            "send them in several requests to the same batch")
    return data


def _checked(entity: str, records: list) -> list[dict]:
    """The typed records, or a 422 naming every bad record's index, field and reason."""
    errors: list[dict] = []
    typed_records: list[dict] = []
    first_at: dict[str, int] = {}
    for index, raw in enumerate(records):
        if not isinstance(raw, dict):
            errors.append({"index": index, "field": None, "reason": "must be a JSON object"})
            continue
        typed, problems = validate.check(entity, raw, text_values=False)
        if typed is None:
            errors.extend({"index": index, "field": p.field, "reason": p.reason} for p in problems)
            continue
        key = record_key(entity, typed)
        if key in first_at:
            what = f"id {key!r}" if typed.get("id") else "company_id, product_id, category, month and currency"
            errors.append({"index": index, "field": "id",
                           "reason": f"same {what} as the record at index {first_at[key]} of this request"})
            continue
        first_at[key] = index
        typed_records.append(typed)
    if errors:
        bad = len({error["index"] for error in errors})
        raise ApiError(422, f"{bad:,} of {len(records):,} {entity} records refused; nothing of this request was kept",
                       errors=errors[:MAX_ERRORS], error_count=len(errors))
    return typed_records


def _claim(engine, tenant_id: str, key: str, fingerprint: str):
    """None when this request now owns `key`; else the row of the request that does."""
    for _ in range(3):  # the owner may forget the key between our insert and our read
        now = datetime.now(timezone.utc)
        try:
            with engine.begin() as conn:
                conn.execute(import_requests.insert().values(
                    tenant_id=tenant_id, idempotency_key=key, fingerprint=fingerprint, status_code=PENDING,
                    response="", created_at=now))
            return None
        except IntegrityError:
            pass
        where = (import_requests.c.tenant_id == tenant_id, import_requests.c.idempotency_key == key)
        with engine.begin() as conn:
            row = conn.execute(select(import_requests).where(*where)).first()
            if row is None:
                continue
            stale = row.status_code == PENDING and row.fingerprint == fingerprint and row.created_at < now - STALE_PENDING
            if stale and conn.execute(update(import_requests).where(
                    *where, import_requests.c.status_code == PENDING,
                    import_requests.c.created_at == row.created_at).values(created_at=now)).rowcount == 1:
                return None  # its request died with the claim held; this one takes it over
            return row
    raise ApiError(409, "a request with this Idempotency-Key keeps starting and failing; retry later")


def _forget(engine, tenant_id: str, key: str) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(delete(import_requests).where(
                import_requests.c.tenant_id == tenant_id, import_requests.c.idempotency_key == key,
                import_requests.c.status_code == PENDING))
    except Exception as exc:  # noqa: BLE001 - the claim goes stale and is taken over after STALE_PENDING
        log.warning("could not release an Idempotency-Key claim: %s", secrets.scrub(outage.reason(exc)))


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.content(), exc.status, headers=headers)


async def _request_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("path", "query", "body"))
    reason = first.get("msg", "is invalid")
    return JSONResponse({"detail": f"{where}: {reason}" if where else reason}, 422)


class _OneLineErrors:
    """Whatever escapes an endpoint becomes a JSON line (503 when the warehouse stopped
    answering, else 500): no traceback to the client; one scrubbed line in the log."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # noqa: BLE001 - the point: nothing reaches the client as a traceback
            unreachable = outage.is_warehouse_error(exc)
            lines = str(exc).strip().splitlines()
            log.error("%s %s failed: %s", scope.get("method"), scope.get("path"),
                      secrets.scrub(outage.reason(exc) if unreachable else f"{type(exc).__name__}: "
                                    f"{lines[0] if lines else ''}"))
            if started:
                raise
            status, detail = ((503, "the warehouse does not answer; retry later") if unreachable
                              else (500, "internal error; the server log has the cause"))
            await JSONResponse({"detail": detail}, status)(scope, receive, send)
