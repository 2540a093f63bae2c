"""Credential references (`env:NAME`) and their resolution.

Tenants store references to secrets, never secrets. Errors name the key and the
environment variable, never a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

_KEY = re.compile(r"[a-z][a-z0-9_]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CredentialError(ValueError):
    """A credential reference is malformed, or what it points at is missing."""


def parse_reference(key: str, ref: str) -> str:
    """The environment variable named by `ref` ("env:NAME")."""
    if not isinstance(ref, str) or not ref.startswith("env:"):
        raise CredentialError(f"credential {key}: reference must look like env:NAME")
    name = ref[len("env:"):]
    if not _ENV_NAME.fullmatch(name):
        raise CredentialError(f"credential {key}: {name!r} is not a valid environment variable name")
    return name


def parse_credential_args(args: Iterable[str]) -> dict[str, str]:
    """["company_id=env:CW_COMPANY", ...] -> {"company_id": "env:CW_COMPANY", ...}."""
    refs: dict[str, str] = {}
    for arg in args:
        key, sep, ref = arg.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise CredentialError(f"credential {arg.partition('=')[0]!r}: expected KEY=env:VAR")
        if key in refs:
            raise CredentialError(f"credential {key}: given twice")
        parse_reference(key, ref.strip())
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
    return values
