"""A mapped set validated in chunks tells what one frame of it would: ids unique and one tenant
across chunks, a failure's count and samples summed over the chunks it occurs in."""

from __future__ import annotations

import pandas as pd

from hg_pipeline.quality import check_mapped


def _chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [frame.iloc[start:start + size].reset_index(drop=True) for start in range(0, len(frame), size)]


def test_chunks_of_a_valid_set_pass(mapped_frame, ids_for):
    frame = mapped_frame("assets", n=30)
    outcome = check_mapped("assets", _chunks(frame, 10), company_ids=ids_for("assets")["company_ids"])
    assert outcome.passed, outcome.description


def test_a_duplicate_id_across_chunks_fails_as_in_one_frame(mapped_frame):
    frame = mapped_frame("companies", n=30)
    frame.loc[25, "id"] = frame.loc[2, "id"]  # chunk 3 repeats an id of chunk 1

    chunked = check_mapped("companies", _chunks(frame, 10))
    whole = check_mapped("companies", frame)

    assert not chunked.passed
    assert chunked.description == whole.description == "id not unique (2 rows)"
    assert [f["expectation"] for f in chunked.failures] == ["expect_column_values_to_be_unique"]


def test_a_second_tenant_in_another_chunk_fails(mapped_frame):
    frame = mapped_frame("members", n=20)
    frame.loc[15, "tenant_id"] = "other-tenant"  # each chunk alone holds one tenant

    outcome = check_mapped("members", _chunks(frame, 10))

    assert not outcome.passed
    (failure,) = outcome.failures
    assert failure["column"] == "tenant_id" and set(failure["sample"]) == {"acme", "other-tenant"}


def test_a_failure_in_several_chunks_is_one_failure_with_their_sum(mapped_frame):
    frame = mapped_frame("companies", n=30)
    for row in (1, 12, 13, 28):
        frame.loc[row, "hg_type"] = f"reseller{row % 2}"

    outcome = check_mapped("companies", _chunks(frame, 10))

    assert outcome.description == "hg_type not in set (4 rows)"
    (failure,) = outcome.failures
    assert failure["unexpected_count"] == 4
    assert sorted(failure["sample"]) == ["reseller0", "reseller1"]
    assert {row["psa_id"] for row in outcome.sample_rows} == {frame.loc[r, "psa_id"] for r in (1, 12, 13, 28)}
