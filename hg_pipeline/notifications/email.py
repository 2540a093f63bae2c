"""Sending notification e-mails over SMTP.

`send` never raises: a notification that cannot be delivered is logged and reported
as `False`, and must never fail the sync it is about.
"""

from __future__ import annotations

import logging
import os
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage

LOGGER_NAME = "hg_pipeline.notifications"
DEFAULT_PORT = 25
DEFAULT_SENDER = "highground-sync@localhost"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = DEFAULT_PORT
    sender: str = DEFAULT_SENDER
    timeout: float = 10  # seconds, per connection
    retries: int = 3  # tries in all (at least one)
    backoff: float = 1.0  # seconds before the 2nd try; doubles before each later one

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SmtpSettings | None:
        """Settings from HG_SMTP_HOST / HG_SMTP_PORT / HG_SMTP_FROM; None (disabled) without a host."""
        env = os.environ if environ is None else environ
        host = (env.get("HG_SMTP_HOST") or "").strip()
        if not host:
            return None
        raw_port = (env.get("HG_SMTP_PORT") or "").strip() or str(DEFAULT_PORT)
        try:
            port = int(raw_port)
        except ValueError:
            raise ValueError(f"HG_SMTP_PORT must be a port number, not {raw_port!r}") from None
        sender = (env.get("HG_SMTP_FROM") or "").strip() or DEFAULT_SENDER
        return cls(host=host, port=port, sender=sender)


def _is_permanent(error: Exception) -> bool:
    """A 5xx answer: trying again will not help."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(500 <= code < 600 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return 500 <= error.smtp_code < 600
    return False


def _describe(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def send(message: EmailMessage, settings: SmtpSettings | None, logger=None) -> bool:
    """Deliver `message`; True when the server accepted it. Never raises.

    Tries `settings.retries` times on SMTP errors and OS errors (refused connection,
    timeout), sleeping `backoff`, 2*`backoff`, ... in between; a permanent (5xx)
    refusal is not retried. Each failure is logged as a warning, giving up as an error.
    `settings=None` means notifications are disabled: nothing is sent, False returned.
    """
    log = logger or logging.getLogger(LOGGER_NAME)
    subject = message.get("Subject", "(no subject)")
    try:
        if settings is None:
            log.info(f"notifications disabled (HG_SMTP_HOST unset); not sending {subject!r}")
            return False
        if message.get("From") is None:
            message["From"] = settings.sender
        attempts = max(1, int(settings.retries))
        where = f"{settings.host}:{settings.port}"
        for attempt in range(1, attempts + 1):
            try:
                with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
                    refused = smtp.send_message(message)
                if refused:
                    log.warning(f"e-mail {subject!r} refused for {sorted(refused)} by {where}")
                return True
            except (smtplib.SMTPException, OSError) as error:
                permanent = _is_permanent(error)
                log.warning(
                    f"sending e-mail {subject!r} to {where} failed "
                    f"(try {attempt} of {attempts}): {_describe(error)}"
                )
                if permanent or attempt == attempts:
                    break
                time.sleep(settings.backoff * 2 ** (attempt - 1))
        log.error(f"gave up sending e-mail {subject!r} to {where}")
        return False
    except Exception as error:  # noqa: BLE001 - a notification must never fail the sync
        try:
            log.error(f"could not send e-mail {subject!r}: {_describe(error)}")
        except Exception:  # noqa: BLE001
            pass
        return False
