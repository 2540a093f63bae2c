"""The e-mails the pipeline sends (spec §6), as pure `EmailMessage` builders.

Every subject starts with `[HighGround]` and names the tenant as "Name (tenant_id)".
Nothing here talks to a server: `hg_pipeline.notifications.email.send` does that.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from hg_pipeline import secrets
from hg_pipeline.mapping.worklist import waiting_phrase

SUBJECT_PREFIX = "[HighGround]"
REDACTED = secrets.REDACTED
COUNT_COLUMNS = ("loaded", "inserted", "updated", "soft_deleted", "pending", "ignored")
MAX_REASON_CHARS = 300


# --------------------------------------------------------------------------- helpers


def redact(text: str, secret_values: Iterable[str] = ()) -> str:
    """`text` with every secret this process registered (`hg_pipeline.secrets`), the given
    `secret_values`, URL credentials and auth tokens replaced by `***`.

    Secrets are also matched in their URL-encoded forms; empty secrets are ignored.
    """
    return secrets.scrub(text, extra=secret_values)


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """The first non-blank line of `text`, whitespace collapsed, at most `limit` characters."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = re.sub(r"\s+", " ", lines[0]) if lines else "(no reason given)"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_duration(seconds: float) -> str:
    """12m 03s; 1h 02m 03s from an hour on."""
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def _format_hours(hours: float) -> str:
    return f"{hours:g}"


def _format_time(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _header_safe(text: object) -> str:
    return re.sub(r"[\r\n]+", " ", str(text)).strip()


def _tenant(tenant_id: str, tenant_name: str) -> str:
    return f"{_header_safe(tenant_name)} ({_header_safe(tenant_id)})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        parts = [str(cells[0]).ljust(widths[0])]
        parts += [str(cell).rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule] + [line(row) for row in rows])


def _message(subject: str, body: str, *, sender: str, to: str | Iterable[str]) -> EmailMessage:
    recipients = [to] if isinstance(to, str) else list(to)
    message = EmailMessage()
    message["Subject"] = _header_safe(subject)
    message["From"] = _header_safe(sender)
    message["To"] = ", ".join(_header_safe(r) for r in recipients)
    message["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2].strip(" >") or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)  # explicit domain: no DNS lookup
    message.set_content(body.rstrip() + "\n\n-- \nHighGround sync\n")
    return message


# --------------------------------------------------------------------------- builders


def ready_to_map(
    tenant_id: str, tenant_name: str, counts: Mapping[str, int], mapping_url_hint: str,
    *, sender: str, to: str | Iterable[str], types_waiting: int | None = None, records_waiting: int | None = None,
) -> EmailMessage:
    """The initial sync is done: the MSP can now map its PSA data.

    `types_waiting` / `records_waiting`: the types and categories no rule covers yet and the
    records waiting for a decision (the initial sync's `mapping_worklist`); None when unknown.
    """
    rows = [[entity, f"{count:,}"] for entity, count in counts.items()]
    waiting = []
    if types_waiting is not None or records_waiting is not None:
        phrase = waiting_phrase(types_waiting or 0, records_waiting or 0)
        waiting = [phrase[0].upper() + phrase[1:] + ".", ""]
    tenant = _header_safe(tenant_id)
    body = "\n".join([
        f"The initial sync for {_tenant(tenant_id, tenant_name)} has finished.",
        "Your PSA data is in HighGround and ready to map.",
        "",
        _table(["entity", "records"], rows) if rows else "(no records were found)",
        "",
        *waiting,
        f"Start from a mapping that names every type and category: hg-pipeline mapping template {tenant} > mapping.yaml",
        f"See what waits for a decision: hg-pipeline mapping pending {tenant}",
        "",
        f"Map it here: {mapping_url_hint}",
        "Nothing is loaded into the warehouse until the mapping is saved.",
    ])
    subject = f"{SUBJECT_PREFIX} {_tenant(tenant_id, tenant_name)}: data ready to map"
    return _message(subject, body, sender=sender, to=to)


def sync_completed(
    tenant_id: str, tenant_name: str, kind: str, counts: Mapping[str, Mapping[str, int]],
    quarantined: int, duration_seconds: float, *, sender: str, to: str | Iterable[str],
) -> EmailMessage:
    """A sync finished: counts per entity, records quarantined, how long it took."""
    rows = [
        [entity] + [f"{int(entity_counts.get(column, 0) or 0):,}" for column in COUNT_COLUMNS]
        for entity, entity_counts in counts.items()
    ]
    header = ["entity"] + [column.replace("_", " ") for column in COUNT_COLUMNS]
    quarantine_line = (
        f"Quarantined: {quarantined:,} record{'s' if quarantined != 1 else ''}"
        + (" (left out of the load; see the quarantine table)" if quarantined else "")
    )
    body = "\n".join([
        f"The {kind} sync for {_tenant(tenant_id, tenant_name)} completed in "
        f"{format_duration(duration_seconds)}.",
        "",
        _table(header, rows) if rows else "(no entities were loaded)",
        "",
        quarantine_line,
        f"Duration: {format_duration(duration_seconds)}",
    ])
    subject = f"{SUBJECT_PREFIX} {_tenant(tenant_id, tenant_name)}: {kind} sync completed"
    return _message(subject, body, sender=sender, to=to)


def sync_failed(
    tenant_id: str, tenant_name: str, kind: str, step: str, reason: str,
    *, sender: str, to: str | Iterable[str], secrets: Iterable[str] = (),
) -> EmailMessage:
    """A sync failed at `step`; `reason` is redacted (and cut to one line) before use."""
    safe_reason = one_line(redact(reason, secrets))
    safe_step = one_line(redact(step, secrets), limit=120)
    body = "\n".join([
        f"The {kind} sync for {_tenant(tenant_id, tenant_name)} failed.",
        "",
        f"Failing step: {safe_step}",
        f"Reason: {safe_reason}",
        "",
        "HighGround support has the full details of the run.",
    ])
    subject = f"{SUBJECT_PREFIX} {_tenant(tenant_id, tenant_name)}: {kind} sync failed"
    return _message(subject, body, sender=sender, to=to)


def sync_overdue(
    tenant_id: str, tenant_name: str, kind: str, started_at: dt.datetime, hours: float,
    *, sender: str, to: str | Iterable[str],
) -> EmailMessage:
    """A sync has been running for longer than the overdue threshold."""
    body = "\n".join([
        f"The {kind} sync for {_tenant(tenant_id, tenant_name)} has been running for more than "
        f"{_format_hours(hours)} hours, since {_format_time(started_at)}.",
        "",
        "HighGround support has been told and is looking into it.",
    ])
    subject = f"{SUBJECT_PREFIX} {_tenant(tenant_id, tenant_name)}: {kind} sync overdue"
    return _message(subject, body, sender=sender, to=to)
