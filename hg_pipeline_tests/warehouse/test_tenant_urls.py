"""`tenant add --base-url`: only an http(s) URL with a host, a valid port and no control
character, never a link-local, metadata or unspecified address, a private one only when the
operator allows it (HG_ALLOW_PRIVATE_PSA=1); loopback always (simulators, tests, the demo)."""

from __future__ import annotations

import pytest

from hg_pipeline.cli import main
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS
from hg_pipeline.warehouse.tenants import list_tenants

CREDENTIALS = [arg for key in DEMO_CREDENTIALS for arg in ("--credential", f"{key}=env:URL_CW_{key.upper()}")]


@pytest.fixture
def add(pg_url, warehouse, capsys, monkeypatch):
    monkeypatch.delenv("HG_ALLOW_PRIVATE_PSA", raising=False)

    def run(base_url: str, tenant: str = "acme") -> tuple[int, str]:
        capsys.readouterr()
        code = main(["tenant", "add", tenant, "--source", "connectwise", "--base-url", base_url, *CREDENTIALS,
                     "--database-url", pg_url])
        return code, capsys.readouterr().err

    return run


@pytest.mark.parametrize("base_url, reason", [
    ("http://169.254.169.254", "base-url host 169.254.169.254 is a cloud metadata address"),
    ("http://169.254.169.254/latest/meta-data/", "base-url host 169.254.169.254 is a cloud metadata address"),
    ("http://2852039166/", "base-url host 2852039166 is a cloud metadata address"),  # 169.254.169.254 as a number
    ("http://metadata.google.internal", "base-url host metadata.google.internal is a cloud metadata name"),
    ("http://METADATA.google.internal./computeMetadata/v1/",
     "base-url host metadata.google.internal. is a cloud metadata name"),
    ("http://[fd00:ec2::254]", "base-url host fd00:ec2::254 is a cloud metadata address"),
    ("http://[::ffff:169.254.169.254]", "base-url host ::ffff:169.254.169.254 is a cloud metadata address"),
    ("http://169.254.10.20:8080", "base-url host 169.254.10.20 is a link-local address"),
    ("http://[fe80::1]:8080", "base-url host fe80::1 is a link-local address"),
    ("http://0.0.0.0:8101", "base-url host 0.0.0.0 is the unspecified address"),
    ("http://[::]:8101", "base-url host :: is the unspecified address"),
    ("http://", "base-url has no host"),
    ("https:///v4_6_release", "base-url has no host"),
    ("http://127.0.0.1:99999", "base-url port must be a number from 1 to 65535"),
    ("http://127.0.0.1:0", "base-url port must be a number from 1 to 65535"),
    ("http://127.0.0.1:80a", "base-url port must be a number from 1 to 65535"),
    ("ftp://psa.example.com", "base-url must be an http:// or https:// URL"),
    ("psa.example.com", "base-url must be an http:// or https:// URL"),
    ("http://user:secret-pass@psa.example.com", "base-url must not carry credentials; use --credential KEY=env:VAR"),
    ("http://[::1", "base-url is not a valid URL"),
    ("http://psa.example.com\r\nX-Injected: 1", "base-url contains whitespace or control characters"),
    ("http://psa.example.com/\nthe rest", "base-url contains whitespace or control characters"),
    ("http://psa.exa\tmple.com", "base-url contains whitespace or control characters"),
    ("http://psa.example.com/\x00", "base-url contains whitespace or control characters"),
    ("http://10.1.2.3:8080", "base-url host 10.1.2.3 is a private address "
                             "(set HG_ALLOW_PRIVATE_PSA=1 for a PSA on your own network)"),
    ("https://192.168.1.20", "base-url host 192.168.1.20 is a private address "
                             "(set HG_ALLOW_PRIVATE_PSA=1 for a PSA on your own network)"),
])
def test_a_bad_base_url_is_refused_with_exit_2_and_one_line(add, warehouse, base_url, reason):
    code, err = add(base_url)
    assert code == 2
    assert err == f"hg-pipeline: {reason}\n"  # one line: no CR, LF or value after the reason
    assert "secret-pass" not in err and "X-Injected" not in err
    assert list_tenants(warehouse) == []


def test_a_private_address_needs_the_operator_setting(add, warehouse, monkeypatch):
    assert add("http://10.1.2.3:8080")[0] == 2
    monkeypatch.setenv("HG_ALLOW_PRIVATE_PSA", "1")
    assert add("http://10.1.2.3:8080") == (0, "")
    assert add("https://[fd12::1]/", tenant="globex") == (0, "")
    # metadata and link-local stay refused, private or not (fd00:ec2::254 is in fc00::/7)
    assert add("http://[fd00:ec2::254]", tenant="initech")[0] == 2
    assert add("http://169.254.169.254", tenant="initech")[0] == 2
    assert [t.base_url for t in list_tenants(warehouse)] == ["http://10.1.2.3:8080", "https://[fd12::1]/"]


@pytest.mark.parametrize("base_url", [
    "http://127.0.0.1:8101", "http://localhost:8101", "http://[::1]:8101", "https://na.myconnectwise.net",
    "https://api-eu.myconnectwise.net/v4_6_release/apis/3.0", "http://psa.msp.example:8080/",
])
def test_a_good_base_url_is_accepted_without_any_setting(add, base_url):
    assert add(base_url) == (0, "")
