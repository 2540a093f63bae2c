from __future__ import annotations

import datetime as dt

import pytest

from hg_pipeline.notifications import ready_to_map, redact, sync_completed, sync_failed, sync_overdue
from hg_pipeline.notifications.messages import format_duration, one_line

ADDRESSES = {"sender": "highground-sync@test.local", "to": "ops@msp.example"}


def test_every_subject_starts_with_highground_and_names_the_tenant():
    messages = [
        ready_to_map("acme", "Acme IT", {"companies": 3}, "https://hg.example/map/acme", **ADDRESSES),
        sync_completed("acme", "Acme IT", "nightly", {}, 0, 1.0, **ADDRESSES),
        sync_failed("acme", "Acme IT", "nightly", "load", "boom", **ADDRESSES),
        sync_overdue("acme", "Acme IT", "nightly", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), 8, **ADDRESSES),
    ]
    for message in messages:
        assert message["Subject"].startswith("[HighGround] Acme IT (acme): ")
        assert message["From"] == "highground-sync@test.local"
        assert message["To"] == "ops@msp.example"
        assert message["Message-ID"] and message["Date"]


def test_several_recipients():
    message = sync_failed("acme", "Acme", "full", "load", "x", sender="a@b.c", to=["x@y.z", "u@v.w"])
    assert message["To"] == "x@y.z, u@v.w"


def test_sync_completed_has_a_table_per_entity_quarantined_and_duration():
    counts = {
        "companies": {"loaded": 1200, "inserted": 3, "updated": 10, "soft_deleted": 1, "pending": 0, "ignored": 2},
        "contacts": {"loaded": 5400, "inserted": 40},
    }
    message = sync_completed("acme", "Acme IT", "nightly", counts, 7, 723.4, **ADDRESSES)
    body = message.get_content()

    assert message["Subject"] == "[HighGround] Acme IT (acme): nightly sync completed"
    lines = body.splitlines()
    header = next(line for line in lines if line.startswith("entity"))
    assert header.split() == ["entity", "loaded", "inserted", "updated", "soft", "deleted", "pending", "ignored"]
    assert next(line for line in lines if line.startswith("companies")).split() == [
        "companies", "1,200", "3", "10", "1", "0", "2",
    ]
    assert next(line for line in lines if line.startswith("contacts")).split() == [
        "contacts", "5,400", "40", "0", "0", "0", "0",
    ]
    assert "Quarantined: 7 records" in body
    assert "12m 03s" in body


@pytest.mark.parametrize(
    "seconds, text", [(0, "0m 00s"), (59.6, "1m 00s"), (723.4, "12m 03s"), (3723, "1h 02m 03s")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_redact_secrets_and_url_credentials():
    text = (
        "401 from https://acme+pub:pr1vate-key@api.example.com/v4 "
        "header Authorization: Basic YWNtZStwdWI6cHIxdmF0ZQ== key=pr1vate-key "
        "quoted ?token=s3cret%2Fpart%2Btwo&x=1 db postgresql+psycopg://postgres:pgpass@127.0.0.1/hg"
    )
    redacted = redact(text, ["pr1vate-key", "s3cret/part+two", "", None])
    assert "pr1vate" not in redacted
    assert "s3cret" not in redacted and "?token=***&x=1" in redacted
    assert "pgpass" not in redacted
    assert "YWNtZStwdWI6cHIxdmF0ZQ==" not in redacted
    assert "https://***@api.example.com/v4" in redacted
    assert "postgresql+psycopg://***@127.0.0.1/hg" in redacted
    assert "key=***" in redacted


def test_one_line_keeps_the_first_line():
    assert one_line("\n  first   line \nTraceback ...") == "first line"
    assert len(one_line("x" * 1000)) == 300


def test_sync_failed_names_step_and_reason_and_never_the_secret():
    secret = "s3cr3t-Priv4te"
    reason = f"HTTP 401 Unauthorized for https://acme+pub:{secret}@cw.example/v4_6 (key {secret})\nTraceback: ..."
    message = sync_failed("acme", "Acme IT", "full", "companies_raw", reason, secrets=[secret], **ADDRESSES)
    body = message.get_content()

    assert message["Subject"] == "[HighGround] Acme IT (acme): full sync failed"
    assert "Failing step: companies_raw" in body
    assert "Reason: HTTP 401 Unauthorized for https://***@cw.example/v4_6 (key ***)" in body
    assert "Traceback" not in body
    assert secret not in message.as_string()


def test_sync_overdue_says_since_when_and_that_support_knows():
    started = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc)
    message = sync_overdue("acme", "Acme IT", "initial", started, 8, **ADDRESSES)
    body = message.get_content()
    assert message["Subject"] == "[HighGround] Acme IT (acme): initial sync overdue"
    assert "running for more than 8 hours, since 2026-03-01 02:00 UTC" in body
    assert "support has been told" in body


def test_ready_to_map_lists_counts_and_where_to_map():
    message = ready_to_map(
        "acme", "Acme IT", {"company_types": 6, "companies": 1500}, "https://hg.example/map/acme", **ADDRESSES,
    )
    body = message.get_content()
    assert message["Subject"] == "[HighGround] Acme IT (acme): data ready to map"
    assert "https://hg.example/map/acme" in body
    assert [line.split() for line in body.splitlines() if line.startswith("compan")] == [
        ["company_types", "6"], ["companies", "1,500"],
    ]


def test_newlines_in_tenant_names_cannot_inject_headers():
    message = sync_failed("acme", "Acme\r\nBcc: evil@example.com", "full", "load", "x", **ADDRESSES)
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]


def test_ready_to_map_says_what_waits_and_names_the_template_and_pending_commands():
    message = ready_to_map("acme", "Acme IT", {"companies": 40, "contacts": 150}, "https://hg.example/map/acme",
                           types_waiting=33, records_waiting=1250, **ADDRESSES)
    body = message.get_content()
    assert message["Subject"] == "[HighGround] Acme IT (acme): data ready to map"
    assert "33 types and categories and 1,250 records wait for a decision." in body.splitlines()
    assert "hg-pipeline mapping template acme > mapping.yaml" in body
    assert "hg-pipeline mapping pending acme" in body
    assert "Map it here: https://hg.example/map/acme" in body

    one = ready_to_map("acme", "Acme IT", {}, "x", types_waiting=1, records_waiting=0, **ADDRESSES).get_content()
    assert "1 type or category waits for a decision." in one.splitlines()
    done = ready_to_map("acme", "Acme IT", {}, "x", types_waiting=0, records_waiting=0, **ADDRESSES).get_content()
    assert "Nothing waits for a decision." in done.splitlines()
    # an initial run without a worklist (e.g. from an older release): no count, the commands still
    unknown = ready_to_map("acme", "Acme IT", {"companies": 40}, "x", **ADDRESSES).get_content()
    assert not any(line.endswith("for a decision.") for line in unknown.splitlines())
    assert "hg-pipeline mapping template acme" in unknown
