"""Credential references: env:NAME only, errors name the key and variable, never a value."""

from __future__ import annotations

import pytest

from hg_pipeline.connectors import CredentialError, parse_credential_args, resolve_credentials
from hg_pipeline.secrets import scrub


def test_parse_and_resolve(monkeypatch):
    refs = parse_credential_args(["company_id=env:CW_CO", "private_key=env:CW_PRIV"])
    assert refs == {"company_id": "env:CW_CO", "private_key": "env:CW_PRIV"}
    monkeypatch.setenv("CW_CO", "acme-company-1")
    monkeypatch.setenv("CW_PRIV", "very-secret")
    assert resolve_credentials(refs, ("company_id", "private_key")) == {"company_id": "acme-company-1",
                                                                        "private_key": "very-secret"}


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


@pytest.mark.parametrize("args, named", [
    (["company_id=env:CW_CO", "hunter2-pasted-value"], "credential argument 2: expected KEY=env:VAR"),
    (["private_key:hunter2-pasted-value"], "credential argument 1: expected KEY=env:VAR"),
    (["private_key=hunter2-pasted-value"], "credential private_key: expected a reference env:VAR"),
    (["private_key=env:hunter2-pasted-value"], "credential private_key: the name after env: must be"),
    (["hunter2pastedvalue=env:X"], None),  # a key of no source is accepted here, refused by the tenant check
    (["hunter2pastedvalue=env:X", "hunter2pastedvalue=env:Y"], "credential argument 2: given twice"),
    (["hunter2pastedvalue=hunter2-pasted-value"], "credential argument 1: expected a reference env:VAR"),
])
def test_errors_name_the_key_or_the_argument_never_what_was_typed(args, named):
    if named is None:
        assert parse_credential_args(args) == {"hunter2pastedvalue": "env:X"}
        return
    with pytest.raises(CredentialError) as error:
        parse_credential_args(args)
    message = str(error.value)
    assert message.startswith(named) and "\n" not in message
    assert "hunter2" not in message


def test_resolved_values_are_scrubbed_from_then_on(monkeypatch):
    monkeypatch.setenv("CW_PRIV_RESOLVED", "resolved/secret value+1")
    resolve_credentials({"private_key": "env:CW_PRIV_RESOLVED"}, ("private_key",))
    text = 'raw resolved/secret value+1, url resolved%2Fsecret%20value%2B1, form resolved%2Fsecret+value%2B1, ' \
           'json "resolved\\/secret value+1"'
    assert scrub(text) == 'raw ***, url ***, form ***, json "***"'
