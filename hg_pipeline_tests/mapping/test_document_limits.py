"""Mapping documents over the limits (size, nesting, aliases) are refused at once with one line,
before the YAML composer (recursive) or the file read (memory) can be made to suffer."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from hg_pipeline.cli import main
from hg_pipeline.mapping.document import MAX_DEPTH, MAX_DOCUMENT_BYTES, MappingError, parse_document
from hg_pipeline.warehouse.mappings import current_mapping
from hg_pipeline.warehouse.tenants import Tenant, add_tenant

DEEP_FLOW = "companies: " + "[" * 490 + "]" * 490 + "\n"
DEEP_BLOCK = "companies:\n" + "".join(f"{'  ' * level}k{level}:\n" for level in range(1, 490)) + "  " * 490 + "x: 1\n"
LAUGHS = "\n".join(  # ten aliases of ten aliases of ...: over a million values from 7 lines
    [f"a0: &a0 [{', '.join(['x'] * 10)}]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]) + "\n"


def refused(text: str) -> MappingError:
    started = time.monotonic()
    with pytest.raises(MappingError) as caught:
        parse_document(text)
    assert time.monotonic() - started < 2
    assert len(caught.value.problems) == 1
    return caught.value


def test_a_document_over_one_megabyte_is_refused_before_it_is_parsed():
    error = refused("# " + "x" * (50 * 1024 * 1024) + "\n")
    assert str(error) == "52,428,803 bytes is over the 1 MB limit for a mapping document"
    assert parse_document("# " + "x" * (MAX_DOCUMENT_BYTES - 3) + "\n").source_text  # the limit itself passes
    assert "over the 1 MB limit" in str(refused("# " + "é" * (MAX_DOCUMENT_BYTES // 2) + "\n"))  # bytes, not chars


@pytest.mark.parametrize("text, line", [(DEEP_FLOW, 1), (DEEP_BLOCK, MAX_DEPTH + 1)])
def test_deep_nesting_is_refused_with_its_line_instead_of_a_recursion_error(text, line):
    error = refused(text)
    assert (error.line, error.reason) == (line, f"nested more than {MAX_DEPTH} levels deep (a mapping document "
                                                "needs 5)")


def test_nesting_up_to_the_limit_is_read_as_usual():
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    error = refused(f"companies: {nested}\n")  # as deep as allowed: the usual problem, not the limit
    assert error.reason == "companies: expected a mapping"


def test_aliases_that_expand_past_the_node_limit_are_refused():
    error = refused(LAUGHS)
    assert error.reason == "more than 1,000,000 values once its aliases are expanded" and error.line == 6


@pytest.fixture
def import_mapping(pg_url, warehouse, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    add_tenant(warehouse, Tenant("acme", "Acme", "connectwise", "http://127.0.0.1:9",
                                 {k: "env:X" for k in ("company_id", "public_key", "private_key", "client_id")}))

    def run(path) -> tuple[int, str]:
        code = main(["mapping", "import", "acme", str(path), "--database-url", pg_url])
        return code, capsys.readouterr().err

    return run


def test_the_command_refuses_a_50_mb_file_without_reading_it(import_mapping, warehouse, tmp_path):
    path = tmp_path / "mapping.yaml"
    with open(path, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    import_mapping(path)  # modules imported, so what follows measures the refusal alone
    tracemalloc.start()
    started = time.monotonic()
    code, err = import_mapping(path)
    seconds = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert code == 2 and seconds < 2 and peak < 5 * 1024 * 1024
    assert err == (f"hg-pipeline: {path}: 52,428,800 bytes is over the 1 MB limit for a mapping document; "
                   "nothing stored\n")
    assert current_mapping(warehouse, "acme") is None


def test_the_command_refuses_deep_nesting_with_one_line(import_mapping, warehouse, tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(DEEP_BLOCK)
    code, err = import_mapping(path)
    assert code == 2
    assert err == (f"hg-pipeline: {path}: line {MAX_DEPTH + 1}: nested more than {MAX_DEPTH} levels deep "
                   "(a mapping document needs 5); nothing stored\n")
    assert current_mapping(warehouse, "acme") is None
