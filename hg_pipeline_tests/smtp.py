"""A real SMTP server on loopback (aiosmtpd) that records what it receives; shared by the
notification tests and the sensor tests. `start_smtp_server` also serves STARTTLS, implicit
TLS and AUTH, with a throw-away CA and server certificate from `write_test_pki`."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

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
    sessions: list = field(default_factory=list)  # (over TLS?, login) per accepted message

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            return "451 4.3.0 Try again later"
        self.envelopes.append(envelope)
        login = session.login_data.decode() if session.login_data else None
        over_tls = server.transport.get_extra_info("ssl_object") is not None  # STARTTLS or implicit TLS
        self.sessions.append((over_tls, login))
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(e.original_content, policy=policy.default) for e in self.envelopes]

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.messages]


@dataclass
class Authenticator:
    """aiosmtpd authenticator accepting one login; records every attempt (never the password)."""

    login: str
    password: str
    attempts: list = field(default_factory=list)  # (connection id, mechanism, login, accepted)

    def __call__(self, server, session, envelope, mechanism, auth_data):
        accepted = (auth_data.login.decode(), auth_data.password.decode()) == (self.login, self.password)
        self.attempts.append((id(session), mechanism, auth_data.login.decode(), accepted))
        return AuthResult(success=accepted, handled=False, auth_data=auth_data)

    @property
    def connections(self) -> int:
        return len({connection for connection, *_ in self.attempts})


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int

    def settings(self, **overrides) -> SmtpSettings:
        values = {"host": "127.0.0.1", "port": self.port, "sender": "highground-sync@test.local",
                  "timeout": 5, "retries": 3, "backoff": 0.01} | overrides
        return SmtpSettings(**values)


@contextlib.contextmanager
def start_smtp_server(handler: RecordingHandler | None = None, **smtp_parameters):
    """An aiosmtpd server on a free loopback port; `smtp_parameters` go to aiosmtpd's SMTP
    (`tls_context`, `require_starttls`, `authenticator`, ...) or, for `ssl_context`, wrap
    the whole connection in TLS."""
    handler = handler or RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **smtp_parameters)
    controller.start()
    try:
        yield SmtpServer(handler, controller.port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server():
    with start_smtp_server() as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class SmtpPki:
    ca_file: str  # the CA certificate a client trusts (HG_SMTP_CA_FILE)
    cert_file: str  # the server certificate, signed by the CA
    key_file: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def write_test_pki(folder: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> SmtpPki:
    """A throw-away CA and a one-day server certificate for `names` (host names or IP addresses) signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(timezone.utc)

    def certificate(subject, issuer, public_key, signing_key, *extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    def usage(**allowed):
        flags = dict.fromkeys(["digital_signature", "content_commitment", "key_encipherment",
                               "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                               "encipher_only", "decipher_only"], False)
        return x509.KeyUsage(**(flags | allowed))

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hg_pipeline test CA")])
    ca = certificate(ca_name, ca_name, ca_key.public_key(), ca_key,
                     (x509.BasicConstraints(ca=True, path_length=0), True),
                     (usage(key_cert_sign=True, crl_sign=True), True))
    server = certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]), ca_name, server_key.public_key(), ca_key,
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (usage(digital_signature=True), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
        (x509.SubjectAlternativeName([_alt_name(x509, name) for name in names]), False),
    )
    pki = SmtpPki(str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key"))
    Path(pki.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(pki.cert_file).write_bytes(server.public_bytes(serialization.Encoding.PEM))
    Path(pki.key_file).write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return pki


def _alt_name(x509, name: str):
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@pytest.fixture(scope="session")
def smtp_pki(tmp_path_factory) -> SmtpPki:
    return write_test_pki(tmp_path_factory.mktemp("smtp-tls"))
