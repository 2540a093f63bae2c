"""Sending notification e-mails over SMTP.

`send` never raises: a notification that cannot be delivered is logged and reported
as `False`, and must never fail the sync it is about.

Transport security is `none`, `starttls` or `ssl` (implicit TLS). Credentials are only
ever sent over TLS, to a server whose certificate was verified (unless verification is
switched off), and the password appears in no log line, exception text or repr.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

LOGGER_NAME = "hg_pipeline.notifications"
DEFAULT_PORT = 25
DEFAULT_SENDER = "highground-sync@localhost"
SECURITY_MODES = ("none", "starttls", "ssl")
SECURITY_BY_PORT = {587: "starttls", 465: "ssl"}  # any other port: none
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class SmtpSecurityError(smtplib.SMTPException):
    """The connection cannot be as secure as configured; nothing was sent, and a retry will not help."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = DEFAULT_PORT
    sender: str = DEFAULT_SENDER
    timeout: float = 10  # seconds, per connection
    retries: int = 3  # tries in all (at least one)
    backoff: float = 1.0  # seconds before the 2nd try; doubles before each later one
    security: str = ""  # none | starttls | ssl; empty: by port (SECURITY_BY_PORT)
    user: str | None = None  # log in when set (needs `password` and TLS)
    password: str | None = field(default=None, repr=False)
    verify: bool = True  # False: any certificate is accepted (test and internal relays only)
    ca_file: str | None = None  # PEM bundle trusted instead of the system's CAs

    def __post_init__(self):
        security = (self.security or SECURITY_BY_PORT.get(self.port, "none")).strip().lower()
        if security not in SECURITY_MODES:
            raise ValueError(f"HG_SMTP_SECURITY must be none, starttls or ssl, not {self.security!r}")
        object.__setattr__(self, "security", security)
        if self.user and not self.password:
            raise ValueError("HG_SMTP_USER is set but HG_SMTP_PASSWORD is not")
        if self.password and not self.user:
            raise ValueError("HG_SMTP_PASSWORD is set but HG_SMTP_USER is not")
        if self.user and security == "none":
            raise ValueError("HG_SMTP_USER needs HG_SMTP_SECURITY=starttls or ssl: "
                             "credentials are never sent unencrypted")
        if self.ca_file and not self.verify:
            raise ValueError("HG_SMTP_CA_FILE is set but HG_SMTP_VERIFY is false: choose one")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SmtpSettings | None:
        """Settings from the HG_SMTP_* variables; None (disabled) without HG_SMTP_HOST.

        Raises a one-line ValueError naming the variable that is wrong (never a password).
        """
        env = os.environ if environ is None else environ
        host = (env.get("HG_SMTP_HOST") or "").strip()
        if not host:
            return None
        raw_port = (env.get("HG_SMTP_PORT") or "").strip() or str(DEFAULT_PORT)
        try:
            port = int(raw_port)
        except ValueError:
            raise ValueError(f"HG_SMTP_PORT must be a port number, not {raw_port!r}") from None
        settings = cls(
            host=host,
            port=port,
            sender=(env.get("HG_SMTP_FROM") or "").strip() or DEFAULT_SENDER,
            security=(env.get("HG_SMTP_SECURITY") or "").strip(),
            user=(env.get("HG_SMTP_USER") or "").strip() or None,
            password=env.get("HG_SMTP_PASSWORD") or None,  # verbatim: spaces may be part of it
            verify=_flag(env, "HG_SMTP_VERIFY", default=True),
            ca_file=(env.get("HG_SMTP_CA_FILE") or "").strip() or None,
        )
        if settings.security != "none":
            settings.tls_context()  # a bad HG_SMTP_CA_FILE is a configuration error, not a send failure
        return settings

    def tls_context(self) -> ssl.SSLContext:
        """The client context: the system's CAs (or `ca_file`'s), host name checked; or no checks at all."""
        if self.ca_file:
            try:
                return ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
                raise ValueError(f"HG_SMTP_CA_FILE {self.ca_file!r} is not a readable PEM bundle: "
                                 f"{_first_line(error)}") from None
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _flag(env, name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


def _is_permanent(error: Exception) -> bool:
    """A 5xx answer, a missing capability or an untrusted certificate: trying again will not help."""
    if isinstance(error, (SmtpSecurityError, smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError)):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(500 <= code < 600 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return 500 <= error.smtp_code < 600
    return False


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""


def _describe(error: Exception, password: str | None = None) -> str:
    text = _first_line(error)
    if password:
        text = text.replace(password, "***")
    return f"{type(error).__name__}: {text}".rstrip(": ")


def _open(settings: SmtpSettings, context: ssl.SSLContext | None) -> smtplib.SMTP:
    if settings.security == "ssl":
        return smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
    return smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)


def _deliver_once(message: EmailMessage, settings: SmtpSettings, context: ssl.SSLContext | None) -> dict:
    with _open(settings, context) as smtp:
        if settings.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                # no fallback to plaintext: neither the credentials nor the message leave
                raise SmtpSecurityError("the server does not offer STARTTLS (HG_SMTP_SECURITY=starttls); "
                                        "nothing sent")
            smtp.starttls(context=context)
        if settings.user:
            smtp.login(settings.user, settings.password)
        return smtp.send_message(message)


def send(message: EmailMessage, settings: SmtpSettings | None, logger=None) -> bool:
    """Deliver `message`; True when the server accepted it. Never raises.

    Tries `settings.retries` times on SMTP errors and OS errors (refused connection,
    timeout), sleeping `backoff`, 2*`backoff`, ... in between; a permanent refusal (5xx,
    a failed login included), a server without STARTTLS when it is required, or an
    untrusted certificate is not retried. Each failure is logged as a warning, giving up
    as an error. `settings=None` means notifications are disabled: nothing is sent, False returned.
    """
    log = logger or logging.getLogger(LOGGER_NAME)
    subject = message.get("Subject", "(no subject)")
    password = settings.password if settings is not None else None
    try:
        if settings is None:
            log.info(f"notifications disabled (HG_SMTP_HOST unset); not sending {subject!r}")
            return False
        if message.get("From") is None:
            message["From"] = settings.sender
        context = settings.tls_context() if settings.security != "none" else None
        attempts = max(1, int(settings.retries))
        where = f"{settings.host}:{settings.port} ({settings.security})"
        for attempt in range(1, attempts + 1):
            try:
                refused = _deliver_once(message, settings, context)
                if refused:
                    log.warning(f"e-mail {subject!r} refused for {sorted(refused)} by {where}")
                return True
            except (smtplib.SMTPException, OSError) as error:
                permanent = _is_permanent(error)
                log.warning(
                    f"sending e-mail {subject!r} to {where} failed "
                    f"(try {attempt} of {attempts}): {_describe(error, password)}"
                )
                if permanent or attempt == attempts:
                    break
                time.sleep(settings.backoff * 2 ** (attempt - 1))
        log.error(f"gave up sending e-mail {subject!r} to {where}")
        return False
    except Exception as error:  # noqa: BLE001 - a notification must never fail the sync
        try:
            log.error(f"could not send e-mail {subject!r}: {_describe(error, password)}")
        except Exception:  # noqa: BLE001
            pass
        return False
