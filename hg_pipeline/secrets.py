"""The one place secrets are scrubbed: every form of every credential this process has used.

Credentials are registered where they are resolved (`connectors.credentials.resolve_credentials`)
and where a connector builds what it sends (`connectors.http.PsaHttp`: its Basic auth and every
header value). Each value is registered with the forms it can take on the way out: as is,
URL-encoded, JSON-escaped, and, for Basic auth, `user:password` and its base64. A PSA that echoes
a header in an error body therefore echoes a registered form.

`scrub(text)` replaces every registered form, credentials in URLs (`scheme://user:pass@`) and
`Basic`/`Bearer` tokens with `***`. Everything that leaves the process goes through it: log
records (`install_log_scrubbing`: a record factory, so every logger, Dagster's and urllib3's at
DEBUG included, plus a filter on the root handlers), the Failures the assets raise, `sync_runs`,
e-mails and the CLI's stderr.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus

REDACTED = "***"
MIN_LENGTH = 3  # shorter values are not secrets; scrubbing them would garble every message

# Headers that only negotiate content; their values are not secrets.
PUBLIC_HEADERS = frozenset({"accept", "accept-encoding", "accept-language", "content-type", "user-agent"})

# scheme://user:password@host -> scheme://***@host
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/\s@:]*:[^/\s@]*@")
# "Basic abc==", "Bearer eyJ...": a token with a digit or a base64 sign, so prose ("basic
# information") stays readable.
_AUTH_TOKEN = re.compile(r"\b(?P<kind>Basic|Bearer|Token)\s+(?=[A-Za-z._~\-]*[0-9+/=])[A-Za-z0-9._~+/=\-]{8,}",
                         re.IGNORECASE)

_forms: set[str] = set()
_pattern: re.Pattern | None = None
_lock = threading.Lock()


def _variants(value: str) -> set[str]:
    """As is, URL-encoded (path, query, form) and JSON-escaped (with and without `\\/`)."""
    escaped = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    return {value, quote(value, safe=""), quote(value), quote_plus(value),
            *escaped, *(form.replace("/", "\\/") for form in escaped)}


def register(*values: str | None) -> None:
    """Scrub `values` (credential values) from now on, in every form they may take."""
    new = set()
    for value in values:
        if value and len(str(value)) >= MIN_LENGTH:
            new |= {form for form in _variants(str(value)) if len(form) >= MIN_LENGTH}
    _add(new)


def register_basic(user: str, password: str) -> None:
    """The forms of HTTP Basic auth: `user:password`, its base64, and each part."""
    pair = f"{user}:{password}"
    register(user, password, pair, base64.b64encode(pair.encode("utf-8")).decode("ascii"),
             base64.b64encode(pair.encode("latin-1", "replace")).decode("ascii"))


def register_headers(headers: Mapping[str, str]) -> None:
    """Every header value a connector sends (bar content negotiation), and the token of
    `Scheme token` values (Authorization)."""
    for name, value in headers.items():
        if str(name).lower() in PUBLIC_HEADERS or not value:
            continue
        value = str(value)
        _, _, token = value.partition(" ")
        register(value, token.strip())


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_forms)


def _add(new: set[str]) -> None:
    global _pattern
    with _lock:
        if new <= _forms:
            return
        _forms.update(new)
        # Longest first: a form that contains another goes whole.
        _pattern = re.compile("|".join(re.escape(form) for form in sorted(_forms, key=len, reverse=True)))


def scrub(text: object, extra: Iterable[str | None] = ()) -> str:
    """`text` with every registered form (and of `extra` values), URL credentials and auth
    tokens replaced by `***`."""
    result = str(text)
    pattern = _pattern
    if pattern is not None:
        result = pattern.sub(REDACTED, result)
    extras = {form for value in extra or () if value and len(str(value)) >= MIN_LENGTH
              for form in _variants(str(value)) if len(form) >= MIN_LENGTH}
    for form in sorted(extras, key=len, reverse=True):
        result = result.replace(form, REDACTED)
    result = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", result)
    return _AUTH_TOKEN.sub(lambda m: f"{m.group('kind')} {REDACTED}", result)


# --- log records --------------------------------------------------------------------------------


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Scrub a log record in place: its message (arguments merged in) and its exception text."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - arguments that do not fit the format: keep them out
        message = f"{record.msg} (log arguments not shown)"
    record.msg, record.args = scrub(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
    return record


class ScrubFilter(logging.Filter):
    """A handler filter that scrubs every record going through (it never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


_installed = False


def install_log_scrubbing() -> None:
    """Scrub every log record this process creates (any logger, any level), and add a
    `ScrubFilter` to the root logger's handlers. Idempotent; call it again after replacing
    the root handlers (logging.basicConfig(force=True))."""
    global _installed
    with _lock:
        if not _installed:
            previous = logging.getLogRecordFactory()

            def scrubbing_factory(*args, **kwargs) -> logging.LogRecord:
                return scrub_record(previous(*args, **kwargs))

            logging.setLogRecordFactory(scrubbing_factory)
            _installed = True
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
