"""A real SMTP server on loopback (aiosmtpd) that records what it receives; shared by the
notification tests and the sensor tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from hg_pipeline.notifications import SmtpSettings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RecordingHandler:
    """Accepts every message, after refusing the first `fail_first` with a 451."""

    fail_first: int = 0
    attempts: int = 0
    envelopes: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            return "451 4.3.0 Try again later"
        self.envelopes.append(envelope)
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(e.original_content, policy=policy.default) for e in self.envelopes]

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.messages]


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int

    def settings(self, **overrides) -> SmtpSettings:
        values = {"host": "127.0.0.1", "port": self.port, "sender": "highground-sync@test.local",
                  "timeout": 5, "retries": 3, "backoff": 0.01} | overrides
        return SmtpSettings(**values)


@pytest.fixture
def smtp_server():
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(handler, controller.port)
    finally:
        controller.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()
