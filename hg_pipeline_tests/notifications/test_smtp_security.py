"""SMTP with STARTTLS, implicit TLS and login, against real aiosmtpd servers on loopback
that require TLS and AUTH, with a throw-away CA trusted through HG_SMTP_CA_FILE."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace

import pytest

from hg_pipeline.notifications import SmtpSettings, send, sync_failed
from hg_pipeline.orchestration.notify import SMTP_TIMEOUT_SECONDS, smtp_settings
from hg_pipeline_tests.smtp import Authenticator, start_smtp_server, write_test_pki

USER = "hg-notify@msp.example"
PASSWORD = "c0rrect horse-B4ttery"  # a space inside: taken verbatim
WRONG_PASSWORD = "Wr0ng-pa55word-XYZ"
SUBJECT = "[HighGround] Acme IT (acme): full sync failed"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # implicit TLS
SMTP_VARS = ("HG_SMTP_HOST", "HG_SMTP_PORT", "HG_SMTP_FROM", "HG_SMTP_SECURITY", "HG_SMTP_USER",
             "HG_SMTP_PASSWORD", "HG_SMTP_VERIFY", "HG_SMTP_CA_FILE")


@pytest.fixture(autouse=True)
def clean_smtp_env(monkeypatch):
    for name in SMTP_VARS:
        monkeypatch.delenv(name, raising=False)


def _message():
    return sync_failed("acme", "Acme IT", "full", "contacts_raw", "ConnectWise said 401",
                       sender="highground-sync@test.local", to="ops@msp.example")


@contextlib.contextmanager
def _secure_server(pki, mode: str, **smtp_parameters):
    """`starttls`: plain connection that requires STARTTLS then AUTH; `ssl`: implicit TLS, AUTH required."""
    authenticator = Authenticator(USER, PASSWORD)
    if mode == "starttls":
        tls = dict(tls_context=pki.server_context(), require_starttls=True)
    else:  # aiosmtpd only counts STARTTLS as TLS for AUTH; the whole connection is TLS here
        tls = dict(ssl_context=pki.server_context(), auth_require_tls=False)
    with start_smtp_server(auth_required=True, authenticator=authenticator, **(tls | smtp_parameters)) as server:
        yield server, authenticator


def _settings_from_env(monkeypatch, port: int, **variables) -> SmtpSettings:
    monkeypatch.setenv("HG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HG_SMTP_PORT", str(port))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return replace(SmtpSettings.from_env(), timeout=5, backoff=0.01)


def _credentials(pki, password=PASSWORD):
    return {"HG_SMTP_USER": USER, "HG_SMTP_PASSWORD": password, "HG_SMTP_CA_FILE": pki.ca_file}


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "hg_pipeline.notifications" and r.levelno == logging.WARNING]


# --------------------------------------------------------------------------- against real servers


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_then_login_delivers(smtp_pki, monkeypatch, mechanism):
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    with _secure_server(smtp_pki, "starttls", auth_exclude_mechanism=[other]) as (server, authenticator):
        settings = _settings_from_env(monkeypatch, server.port, HG_SMTP_SECURITY="starttls", **_credentials(smtp_pki))
        assert send(_message(), settings) is True

    assert server.handler.subjects() == [SUBJECT]
    assert server.handler.sessions == [(True, USER)]  # over TLS, logged in as USER
    assert [attempt[1:] for attempt in authenticator.attempts] == [(mechanism, USER, True)]


def test_implicit_tls_then_login_delivers(smtp_pki, monkeypatch):
    with _secure_server(smtp_pki, "ssl") as (server, authenticator):
        settings = _settings_from_env(monkeypatch, server.port, HG_SMTP_SECURITY="ssl", **_credentials(smtp_pki))
        assert send(_message(), settings) is True

    assert server.handler.subjects() == [SUBJECT]
    assert server.handler.sessions == [(True, USER)]
    assert [accepted for *_, accepted in authenticator.attempts] == [True]


def test_a_wrong_password_is_permanent_and_never_logged(smtp_pki, monkeypatch, caplog):
    with _secure_server(smtp_pki, "starttls") as (server, authenticator):
        settings = _settings_from_env(monkeypatch, server.port, HG_SMTP_SECURITY="starttls",
                                      **_credentials(smtp_pki, password=WRONG_PASSWORD))
        with caplog.at_level(logging.DEBUG):
            assert send(_message(), settings) is False

    assert server.handler.envelopes == []
    assert authenticator.connections == 1  # one try: a 535 is not retried
    assert authenticator.attempts and not any(accepted for *_, accepted in authenticator.attempts)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "try 1 of 3" in warnings[0] and "535" in warnings[0]
    assert "SMTPAuthenticationError" in warnings[0]
    assert WRONG_PASSWORD not in caplog.text
    assert all(WRONG_PASSWORD not in record.getMessage() for record in caplog.records)
    assert WRONG_PASSWORD not in repr(settings)


def test_starttls_required_but_not_offered_sends_no_credentials(smtp_pki, monkeypatch, caplog):
    authenticator = Authenticator(USER, PASSWORD)
    # a plaintext server that would happily take AUTH without TLS
    with start_smtp_server(authenticator=authenticator, auth_require_tls=False) as server:
        settings = _settings_from_env(monkeypatch, server.port, HG_SMTP_SECURITY="starttls", **_credentials(smtp_pki))
        with caplog.at_level(logging.WARNING, logger="hg_pipeline.notifications"):
            assert send(_message(), settings) is False

    assert authenticator.attempts == []  # the credentials never left
    assert server.handler.envelopes == []  # nor did the message, in clear
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "try 1 of 3" in warnings[0]
    assert "does not offer STARTTLS" in warnings[0] and "\n" not in warnings[0]


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_an_untrusted_certificate_is_refused_before_login(smtp_pki, monkeypatch, caplog, mode):
    with _secure_server(smtp_pki, mode) as (server, authenticator):
        settings = _settings_from_env(monkeypatch, server.port, HG_SMTP_SECURITY=mode,
                                      HG_SMTP_USER=USER, HG_SMTP_PASSWORD=PASSWORD)  # system CAs only
        with caplog.at_level(logging.WARNING, logger="hg_pipeline.notifications"):
            assert send(_message(), settings) is False

    assert authenticator.attempts == [] and server.handler.envelopes == []
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "SSLCertVerificationError" in warnings[0]  # permanent: one try


def test_verify_false_accepts_a_self_signed_relay(smtp_pki, monkeypatch):
    with _secure_server(smtp_pki, "starttls") as (server, authenticator):
        settings = _settings_from_env(monkeypatch, server.port, HG_SMTP_SECURITY="starttls", HG_SMTP_VERIFY="false",
                                      HG_SMTP_USER=USER, HG_SMTP_PASSWORD=PASSWORD)
        assert send(_message(), settings) is True
    assert server.handler.sessions == [(True, USER)]


def test_the_host_name_is_checked_against_the_certificate(monkeypatch, caplog, tmp_path):
    """The CA is trusted, but the certificate is another host's."""
    other_host = write_test_pki(tmp_path, names=("mail.other.example",))
    with _secure_server(other_host, "ssl") as (server, authenticator):
        settings = _settings_from_env(monkeypatch, server.port, HG_SMTP_SECURITY="ssl", **_credentials(other_host))
        with caplog.at_level(logging.WARNING, logger="hg_pipeline.notifications"):
            sent = send(_message(), settings)
    assert sent is False and authenticator.attempts == []
    assert "SSLCertVerificationError" in _warnings(caplog)[0] and "mismatch" in _warnings(caplog)[0]


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("port", "security", "expected"), [
    ("587", None, "starttls"), ("465", None, "ssl"), ("25", None, "none"), ("2525", None, "none"),
    ("2525", "SSL", "ssl"), ("587", "none", "none"),
])
def test_security_defaults_by_port(monkeypatch, port, security, expected):
    monkeypatch.setenv("HG_SMTP_HOST", "mail.example")
    monkeypatch.setenv("HG_SMTP_PORT", port)
    if security:
        monkeypatch.setenv("HG_SMTP_SECURITY", security)
    settings = SmtpSettings.from_env()
    assert settings.security == expected
    assert (settings.user, settings.password, settings.verify, settings.ca_file) == (None, None, True, None)


@pytest.mark.parametrize(("variables", "named"), [
    ({"HG_SMTP_USER": USER}, "HG_SMTP_PASSWORD is not"),
    ({"HG_SMTP_PASSWORD": PASSWORD}, "HG_SMTP_USER is not"),
    ({"HG_SMTP_USER": USER, "HG_SMTP_PASSWORD": PASSWORD, "HG_SMTP_SECURITY": "none"}, "HG_SMTP_SECURITY"),
    ({"HG_SMTP_SECURITY": "tls"}, "HG_SMTP_SECURITY must be none, starttls or ssl"),
    ({"HG_SMTP_VERIFY": "maybe"}, "HG_SMTP_VERIFY must be true or false"),
    ({"HG_SMTP_CA_FILE": "/nonexistent/ca.pem"}, "HG_SMTP_CA_FILE '/nonexistent/ca.pem'"),
    ({"HG_SMTP_CA_FILE": "CA", "HG_SMTP_VERIFY": "false"}, "choose one"),
])
def test_bad_configuration_is_one_line_naming_the_variable(monkeypatch, variables, named):
    monkeypatch.setenv("HG_SMTP_HOST", "mail.example")
    monkeypatch.setenv("HG_SMTP_PORT", "587")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as error:
        SmtpSettings.from_env()
    text = str(error.value)
    assert named in text and "\n" not in text
    assert PASSWORD not in text and USER not in text


def test_a_ca_file_that_is_not_pem_is_a_configuration_error(monkeypatch, tmp_path):
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    monkeypatch.setenv("HG_SMTP_HOST", "mail.example")
    monkeypatch.setenv("HG_SMTP_PORT", "465")
    monkeypatch.setenv("HG_SMTP_CA_FILE", str(garbage))
    with pytest.raises(ValueError, match="HG_SMTP_CA_FILE .* is not a readable PEM bundle"):
        SmtpSettings.from_env()


def test_the_password_is_not_in_the_repr(smtp_pki):
    settings = SmtpSettings(host="mail.example", port=587, user=USER, password=PASSWORD, ca_file=smtp_pki.ca_file)
    assert PASSWORD not in repr(settings) and USER in repr(settings)
    assert settings.security == "starttls"


def test_the_sensors_keep_security_and_credentials(smtp_pki, monkeypatch, caplog):
    log = logging.getLogger("hg_test.sensor")
    for name, value in {"HG_SMTP_HOST": "mail.example", "HG_SMTP_PORT": "465",
                        **_credentials(smtp_pki)}.items():
        monkeypatch.setenv(name, value)

    settings = smtp_settings(log)
    assert (settings.security, settings.user, settings.password, settings.ca_file) == (
        "ssl", USER, PASSWORD, smtp_pki.ca_file)
    assert settings.timeout == min(SmtpSettings.timeout, SMTP_TIMEOUT_SECONDS)

    monkeypatch.delenv("HG_SMTP_USER")
    with caplog.at_level(logging.ERROR, logger="hg_test.sensor"):
        assert smtp_settings(log) is None
    assert "HG_SMTP_USER is not" in caplog.text and PASSWORD not in caplog.text
