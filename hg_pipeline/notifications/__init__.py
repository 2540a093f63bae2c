"""Notification e-mails (spec §6): pure message builders and an SMTP sender that never raises."""

from hg_pipeline.notifications.email import SmtpSecurityError, SmtpSettings, send
from hg_pipeline.notifications.messages import (
    ready_to_map,
    redact,
    sync_completed,
    sync_failed,
    sync_overdue,
)

__all__ = [
    "SmtpSecurityError",
    "SmtpSettings",
    "ready_to_map",
    "redact",
    "send",
    "sync_completed",
    "sync_failed",
    "sync_overdue",
]
