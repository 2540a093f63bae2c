"""Credential references (`env:NAME`) and their resolution.

Tenants store references to secrets, never secrets. Errors name the key (or, for something
that may not be a key, the argument's position) and the expected form, never what was typed
after the key: a user who pastes a value where a reference belongs must not see it echoed.
Every resolved value is registered with `hg_pipeline.secrets`, so it is scrubbed from every
message, log line and event from then on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from hg_pipeline import secrets
from hg_pipeline.connectors.registry import every_credential_key

_KEY = re.compile(r"[a-z][a-z0-9_]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Every credential key of a source (contract section 1); only these are named in an error.
KNOWN_KEYS = every_credential_key()
EXPECTED = "expected KEY=env:VAR, e.g. private_key=env:CW_PRIVATE"


class CredentialError(ValueError):
    """A credential reference is malformed, or what it points at is missing."""


def parse_reference(key: str, ref: str) -> str:
    """The environment variable named by `ref` ("env:NAME")."""
    if not isinstance(ref, str) or not ref.startswith("env:"):
        raise CredentialError(f"credential {key}: expected a reference env:VAR (the environment variable "
                              "that holds the value), not the value itself")
    name = ref[len("env:"):]
    if not _ENV_NAME.fullmatch(name):
        raise CredentialError(f"credential {key}: the name after env: must be letters, digits and _ "
                              "and must not start with a digit")
    return name


def parse_credential_args(args: Iterable[str]) -> dict[str, str]:
    """["company_id=env:CW_COMPANY", ...] -> {"company_id": "env:CW_COMPANY", ...}."""
    refs: dict[str, str] = {}
    for number, arg in enumerate(args, start=1):
        key, sep, ref = arg.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise CredentialError(f"credential argument {number}: {EXPECTED}")
        named = key if key in KNOWN_KEYS else f"argument {number}"
        if key in refs:
            raise CredentialError(f"credential {named}: given twice")
        parse_reference(named, ref.strip())
        refs[key] = ref.strip()
    return refs


def resolve_credentials(
    refs: Mapping[str, str], required: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Plain values for `refs` read from the environment; every `required` key must be there.

    Keys in `refs` beyond `required` are resolved too (e.g. HaloPSA's optional `tenant`).
    """
    environ = os.environ if environ is None else environ
    missing = [key for key in required if key not in refs]
    if missing:
        raise CredentialError(f"credential {missing[0]}: missing (required: {', '.join(required)})")
    values: dict[str, str] = {}
    for key, ref in refs.items():
        name = parse_reference(key, ref)
        value = environ.get(name)
        if value is None or value == "":
            raise CredentialError(f"credential {key}: environment variable {name} is not set")
        values[key] = value
    secrets.register(*values.values())
    return values
