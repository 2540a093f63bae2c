from __future__ import annotations

import datetime as dt
import logging
import time

import pytest

from hg_pipeline.notifications import (
    SmtpSettings,
    ready_to_map,
    send,
    sync_completed,
    sync_failed,
    sync_overdue,
)

ADDRESSES = {"sender": "highground-sync@test.local", "to": "ops@msp.example"}
SECRET = "pr1vate-Key-0xDEADBEEF"


def _four_messages():
    return {
        "data ready to map": ready_to_map(
            "acme", "Acme IT", {"companies": 12, "contacts": 40}, "https://hg.example/map/acme", **ADDRESSES,
        ),
        "nightly sync completed": sync_completed(
            "acme", "Acme IT", "nightly",
            {"companies": {"loaded": 12, "inserted": 1, "updated": 2, "soft_deleted": 0, "pending": 0, "ignored": 1}},
            3, 65.0, **ADDRESSES,
        ),
        "full sync failed": sync_failed(
            "acme", "Acme IT", "full", "contacts_raw",
            f"ConnectWise said 401 for https://acme+pub:{SECRET}@cw.example/v4_6/company/contacts",
            secrets=[SECRET], **ADDRESSES,
        ),
        "initial sync overdue": sync_overdue(
            "acme", "Acme IT", "initial", dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc), 8, **ADDRESSES,
        ),
    }


def test_the_four_messages_reach_a_real_smtp_server(smtp_server):
    settings = smtp_server.settings()
    for message in _four_messages().values():
        assert send(message, settings) is True

    received = smtp_server.handler.messages
    assert [m["Subject"] for m in received] == [
        f"[HighGround] Acme IT (acme): {suffix}" for suffix in _four_messages()
    ]
    envelope = smtp_server.handler.envelopes[0]
    assert envelope.mail_from == "highground-sync@test.local"
    assert envelope.rcpt_tos == ["ops@msp.example"]

    ready, completed, failed, overdue = (m.get_content() for m in received)
    assert "https://hg.example/map/acme" in ready
    assert "Quarantined: 3 records" in completed and "1m 05s" in completed
    assert "Failing step: contacts_raw" in failed and "https://***@cw.example" in failed
    assert "since 2026-03-01 02:00 UTC" in overdue and "support has been told" in overdue
    for envelope in smtp_server.handler.envelopes:
        assert SECRET.encode() not in envelope.original_content


def test_closed_port_returns_false_after_retries_and_logs(closed_port, caplog):
    settings = SmtpSettings(host="127.0.0.1", port=closed_port, sender="a@b.c", timeout=2, retries=3, backoff=0.05)
    message = sync_failed("acme", "Acme", "full", "load", "x", **ADDRESSES)

    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="hg_pipeline.notifications"):
        assert send(message, settings) is False
    elapsed = time.perf_counter() - started

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [f"try {n} of 3" in r.getMessage() for n, r in enumerate(warnings, 1)] == [True] * 3
    assert len(errors) == 1 and "gave up" in errors[0].getMessage()
    assert all(r.name == "hg_pipeline.notifications" for r in caplog.records)
    assert elapsed >= 0.05 + 0.1  # backoff 0.05 then 0.1


def test_a_given_logger_is_used(closed_port):
    class Recorder:
        def __init__(self):
            self.calls = []

        def __getattr__(self, level):
            return lambda text: self.calls.append((level, text))

    recorder = Recorder()
    settings = SmtpSettings(host="127.0.0.1", port=closed_port, sender="a@b.c", retries=2, backoff=0.01)
    assert send(sync_failed("acme", "Acme", "full", "load", "x", **ADDRESSES), settings, logger=recorder) is False
    assert [level for level, _ in recorder.calls] == ["warning", "warning", "error"]


def test_a_transient_refusal_is_retried_and_delivered_once(smtp_server):
    smtp_server.handler.fail_first = 1
    message = _four_messages()["nightly sync completed"]

    assert send(message, smtp_server.settings()) is True

    assert smtp_server.handler.attempts == 2
    assert len(smtp_server.handler.envelopes) == 1
    assert smtp_server.handler.messages[0]["Subject"].endswith("nightly sync completed")


def test_gives_up_when_the_server_keeps_refusing(smtp_server, caplog):
    smtp_server.handler.fail_first = 10
    with caplog.at_level(logging.WARNING, logger="hg_pipeline.notifications"):
        assert send(_four_messages()["full sync failed"], smtp_server.settings(retries=2)) is False
    assert smtp_server.handler.attempts == 2
    assert smtp_server.handler.envelopes == []
    assert "451" in caplog.records[0].getMessage()


def test_send_never_raises_even_on_unexpected_errors(smtp_server):
    class Broken:
        def get(self, *_):
            return "subject"

        def __getitem__(self, _):
            raise RuntimeError("not a message")

    assert send(Broken(), smtp_server.settings()) is False


def test_disabled_notifications_send_nothing():
    assert send(_four_messages()["full sync failed"], None) is False


def test_settings_from_env(monkeypatch):
    for name in ("HG_SMTP_HOST", "HG_SMTP_PORT", "HG_SMTP_FROM"):
        monkeypatch.delenv(name, raising=False)
    assert SmtpSettings.from_env() is None

    monkeypatch.setenv("HG_SMTP_HOST", "mail.internal")
    settings = SmtpSettings.from_env()
    assert (settings.host, settings.port, settings.sender) == ("mail.internal", 25, "highground-sync@localhost")
    assert (settings.timeout, settings.retries, settings.backoff) == (10, 3, 1.0)

    monkeypatch.setenv("HG_SMTP_PORT", "2525")
    monkeypatch.setenv("HG_SMTP_FROM", "sync@hg.example")
    settings = SmtpSettings.from_env()
    assert (settings.port, settings.sender) == (2525, "sync@hg.example")

    monkeypatch.setenv("HG_SMTP_PORT", "smtp")
    with pytest.raises(ValueError, match="HG_SMTP_PORT"):
        SmtpSettings.from_env()
