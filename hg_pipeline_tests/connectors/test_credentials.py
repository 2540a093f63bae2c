"""Credential references: env:NAME only, errors name the key and variable, never a value."""

from __future__ import annotations

import pytest

from hg_pipeline.connectors import CredentialError, parse_credential_args, resolve_credentials


def test_parse_and_resolve(monkeypatch):
    refs = parse_credential_args(["company_id=env:CW_CO", "private_key=env:CW_PRIV"])
    assert refs == {"company_id": "env:CW_CO", "private_key": "env:CW_PRIV"}
    monkeypatch.setenv("CW_CO", "acme")
    monkeypatch.setenv("CW_PRIV", "very-secret")
    assert resolve_credentials(refs, ("company_id", "private_key")) == {"company_id": "acme", "private_key": "very-secret"}


@pytest.mark.parametrize("arg", ["company_id", "company_id=CW_CO", "company_id=env:", "=env:X", "Company=env:X",
                                 "company_id=env:BAD-NAME", "company_id=file:/etc/passwd"])
def test_bad_syntax(arg):
    with pytest.raises(CredentialError):
        parse_credential_args([arg])


def test_duplicate_key():
    with pytest.raises(CredentialError, match="twice"):
        parse_credential_args(["a=env:X", "a=env:Y"])


def test_missing_variable_names_key_and_variable_not_values(monkeypatch):
    monkeypatch.setenv("CW_PUB", "public-value-123")
    monkeypatch.delenv("CW_PRIV_MISSING", raising=False)
    with pytest.raises(CredentialError) as error:
        resolve_credentials({"public_key": "env:CW_PUB", "private_key": "env:CW_PRIV_MISSING"},
                            ("public_key", "private_key"))
    message = str(error.value)
    assert "private_key" in message and "CW_PRIV_MISSING" in message and "public-value-123" not in message
    assert isinstance(error.value, ValueError)


def test_required_key_missing_and_plain_value_refused():
    with pytest.raises(CredentialError, match="client_id"):
        resolve_credentials({}, ("client_id",), environ={})
    with pytest.raises(CredentialError, match="private_key") as error:
        resolve_credentials({"private_key": "hunter2"}, ("private_key",), environ={})
    assert "hunter2" not in str(error.value)
