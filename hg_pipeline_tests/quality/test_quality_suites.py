from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from hg_pipeline.entities import LOADED_ENTITIES
from hg_pipeline.quality import CheckOutcome, check_mapped, check_volume


def _set(column: str, value, row: int = 3):
    def mutate(df: pd.DataFrame) -> object:
        df[column] = df[column].astype(object)
        df.loc[row, column] = value
        return value

    return mutate


def _duplicate(column: str, source: int = 2, target: int = 3):
    def mutate(df: pd.DataFrame) -> object:
        df.loc[target, column] = df.loc[source, column]
        return df.loc[source, column]

    return mutate


NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
IN_SET = "expect_column_values_to_be_in_set"

# entity, column, mutation (returns the expected sample value), expectation
BROKEN = [
    ("companies", "id", _set("id", None), NULL),
    ("companies", "psa_id", _set("psa_id", None), NULL),
    ("companies", "tenant_id", _set("tenant_id", None), NULL),
    ("companies", "id", _duplicate("id"), UNIQUE),
    ("members", "psa_id", _duplicate("psa_id"), UNIQUE),
    ("companies", "name", _set("name", None), NULL),
    ("companies", "hg_type", _set("hg_type", "reseller"), IN_SET),
    ("contacts", "company_id", _set("company_id", None), NULL),
    ("contacts", "company_id", _set("company_id", "no-such-company"), IN_SET),
    ("assets", "company_id", _set("company_id", "no-such-company"), IN_SET),
    ("contacts", "email", _set("email", "not-an-address"), "expect_column_values_to_match_regex"),
    ("contacts", "email", _set("email", "two words@example.com"), "expect_column_values_to_match_regex"),
    ("contacts", "invite_status", _set("invite_status", "pending"), IN_SET),
    ("members", "invite_status", _set("invite_status", "Invited"), IN_SET),
    ("products", "category_id", _set("category_id", None), NULL),
    ("products", "category_id", _set("category_id", "no-such-category"), IN_SET),
    ("products", "mapping_source", _set("mapping_source", "guess"), IN_SET),
]


def _assert_json_safe(outcome: CheckOutcome) -> None:
    json.dumps(outcome.failures)
    json.dumps(outcome.sample_rows)


@pytest.mark.parametrize("entity", LOADED_ENTITIES)
def test_valid_frame_passes(entity, mapped_frame, ids_for, distributions_for):
    frame = mapped_frame(entity)
    extra = {"distributions": distributions_for(frame)} if entity == "products" else {}
    outcome = check_mapped(entity, frame, **ids_for(entity), **extra)
    assert outcome.passed, outcome.description
    assert outcome.name == f"{entity}_mapped_valid"
    assert outcome.failures == [] and outcome.sample_rows == []


@pytest.mark.parametrize("entity", LOADED_ENTITIES)
def test_valid_frame_passes_without_reference_ids(entity, mapped_frame):
    assert check_mapped(entity, mapped_frame(entity)).passed


@pytest.mark.parametrize(
    "entity, column, mutate, expectation", BROKEN,
    ids=[f"{e}-{c}-{x.removeprefix('expect_column_values_to_')}" for e, c, _, x in BROKEN],
)
def test_each_expectation_fails_on_a_crafted_frame(entity, column, mutate, expectation, mapped_frame, ids_for):
    frame = mapped_frame(entity)
    bad_value = mutate(frame)
    offending_psa_id = frame.loc[3, "psa_id"]

    outcome = check_mapped(entity, frame, **ids_for(entity))

    assert not outcome.passed
    assert [(f["expectation"], f["column"]) for f in outcome.failures] == [(expectation, column)]
    failure = outcome.failures[0]
    assert failure["sample"] == [bad_value]
    assert failure["unexpected_count"] == (2 if expectation == UNIQUE else 1)
    assert column in outcome.description
    if offending_psa_id is not None:
        assert offending_psa_id in [row["psa_id"] for row in outcome.sample_rows]
    else:
        assert any(row["psa_id"] is None for row in outcome.sample_rows)
    _assert_json_safe(outcome)


def test_several_failures_are_summarised_in_one_line(mapped_frame):
    frame = mapped_frame("companies")
    frame.loc[4, "psa_id"] = frame.loc[2, "psa_id"]
    frame.loc[5, "psa_id"] = frame.loc[2, "psa_id"]
    frame.loc[7, "hg_type"] = "reseller"

    outcome = check_mapped("companies", frame)

    assert outcome.description == "psa_id not unique (3 rows); hg_type not in set (1 row)"
    assert [f["unexpected_count"] for f in outcome.failures] == [3, 1]
    assert len(outcome.sample_rows) == 4  # three duplicates and the bad type
    assert "\n" not in outcome.description


def test_tenant_id_must_be_a_single_value(mapped_frame):
    frame = mapped_frame("members")
    frame.loc[3, "tenant_id"] = "other-tenant"

    outcome = check_mapped("members", frame)

    assert not outcome.passed
    (failure,) = outcome.failures
    assert failure["expectation"] == "expect_column_unique_value_count_to_be_between"
    assert failure["column"] == "tenant_id"
    assert failure["unexpected_count"] == 1
    assert set(failure["sample"]) == {"acme", "other-tenant"}
    assert outcome.sample_rows[0]["tenant_id"] == "other-tenant"


def test_null_email_is_allowed_but_other_values_must_look_like_addresses(mapped_frame):
    frame = mapped_frame("contacts")
    frame["email"] = frame["email"].astype(object)
    frame.loc[:, "email"] = None
    assert check_mapped("contacts", frame).passed


def test_missing_column_is_reported(mapped_frame):
    frame = mapped_frame("assets").drop(columns=["company_id"])
    outcome = check_mapped("assets", frame, company_ids={"x"})
    assert [(f["expectation"], f["column"]) for f in outcome.failures] == [("expect_column_to_exist", "company_id")]
    assert outcome.description == "column company_id missing"


@pytest.mark.parametrize("entity", LOADED_ENTITIES)
def test_empty_frame_passes(entity, mapped_frame, ids_for):
    for frame in (mapped_frame(entity, n=0), pd.DataFrame()):
        outcome = check_mapped(entity, frame, **ids_for(entity))
        assert (outcome.passed, outcome.description) == (True, "no rows to check")


def test_distributions_not_summing_to_100_fail(mapped_frame, distributions_for):
    products = mapped_frame("products")
    distributions = distributions_for(products)
    broken = distributions["product_id"].iloc[0]
    distributions.loc[distributions.index[0], "pct"] = 20.0  # 20 + 33.3 + 33.3 = 86.7

    outcome = check_mapped("products", products, distributions=distributions)

    assert not outcome.passed
    (failure,) = outcome.failures
    assert failure["expectation"] == "expect_column_values_to_be_between"
    assert failure["column"] == "pct"
    assert failure["unexpected_count"] == 1
    assert failure["sample"] == [pytest.approx(20 + 200 / 3)]
    assert "pct per product not 100 (1 product)" in outcome.description
    assert {row["product_id"] for row in outcome.sample_rows} == {broken}
    _assert_json_safe(outcome)


def test_distributions_within_tolerance_pass(mapped_frame):
    products = mapped_frame("products")
    product = products.loc[products["mapping_source"] == "distribution", "id"].iloc[0]
    distributions = pd.DataFrame({
        "product_id": [product] * 3,
        "category_id": ["a", "b", "c"],
        "pct": [33.3333333, 33.3333333, 33.3333334],  # float noise well under 1e-6
    })
    assert check_mapped("products", products, distributions=distributions).passed
    distributions.loc[2, "pct"] = 33.3334
    assert not check_mapped("products", products, distributions=distributions).passed


def test_unknown_entity_is_an_error():
    with pytest.raises(ValueError, match="unknown entity"):
        check_mapped("tickets", pd.DataFrame())


@pytest.mark.parametrize(
    "current_active, would_delete, passed, description",
    [
        (100, 5, True, "would soft-delete 5 of 100 companies (5% <= 20%)"),
        (100, 20, True, "would soft-delete 20 of 100 companies (20% <= 20%)"),
        (100, 21, False, "would soft-delete 21 of 100 companies (21% > 20%)"),
        (100, 45, False, "would soft-delete 45 of 100 companies (45% > 20%)"),
        (1000, 201, False, "would soft-delete 201 of 1000 companies (20.1% > 20%)"),
        (0, 0, True, "no active companies yet; would soft-delete 0"),
        (0, 7, True, "no active companies yet; would soft-delete 7"),
    ],
)
def test_volume_guard(current_active, would_delete, passed, description):
    outcome = check_volume("companies", current_active=current_active, would_delete=would_delete)
    assert outcome.passed is passed
    assert outcome.description == description
    assert outcome.name == "companies_soft_delete_volume"
    assert len(outcome.failures) == (0 if passed else 1)


def test_volume_guard_share_is_configurable():
    assert check_volume("assets", current_active=10, would_delete=5, max_share=0.5).passed
    assert not check_volume("assets", current_active=10, would_delete=6, max_share=0.5).passed


def test_no_progress_bars_are_printed(mapped_frame, capfd):
    check_mapped("companies", mapped_frame("companies"))
    out, err = capfd.readouterr()
    assert "Calculating Metrics" not in out + err
    assert "%|" not in out + err


@pytest.mark.parametrize("entity", ["contacts"])
def test_100k_rows(entity, mapped_frame, ids_for):
    frame = mapped_frame(entity, n=100_000)
    check_mapped(entity, frame.head(10), **ids_for(entity))  # warm up: import and context
    frame.loc[99_999, "company_id"] = "no-such-company"

    started = time.perf_counter()
    outcome = check_mapped(entity, frame, **ids_for(entity))
    elapsed = time.perf_counter() - started

    print(f"\ncheck_mapped({entity!r}) on {len(frame):,} rows: {elapsed:.2f}s")
    assert not outcome.passed
    assert outcome.failures[0]["sample"] == ["no-such-company"]


def test_another_ge_context_in_the_process_does_not_break_the_checks(mapped_frame):
    import great_expectations as gx
    from great_expectations.data_context.data_context.context_factory import project_manager

    check_mapped("members", mapped_frame("members"))
    theirs = gx.get_context(mode="ephemeral")  # someone else's; becomes GE's "current" context
    frame = mapped_frame("members")
    frame.loc[1, "invite_status"] = "maybe"

    outcome = check_mapped("members", frame)

    assert outcome.failures[0]["sample"] == ["maybe"]
    assert project_manager.get_current_project() is theirs  # left in place


def test_great_expectations_is_ready_without_importing_what_no_suite_uses():
    """warm_up leaves scipy.stats and altair to their first use (no suite here needs them); a
    validation still runs, and each, once asked for, is the real module. A process of its own:
    another test may have imported them already."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import pandas as pd\n"
        "from hg_pipeline.quality import check_mapped, warm_up\n"
        "warm_up()\n"
        "frame = pd.DataFrame([{'tenant_id': 't', 'id': 'm1', 'psa_id': '1', 'name': 'A', 'email': 'a@b.io',"
        " 'invite_status': 'not_invited'}])\n"
        "outcome = check_mapped('members', frame)\n"
        "assert outcome.passed, outcome.description\n"
        "assert 'scipy.stats._stats_py' not in sys.modules, 'scipy.stats was imported'\n"
        "assert 'altair.vegalite' not in sys.modules, 'altair was imported'\n"
        "from scipy import stats\n"
        "assert abs(stats.entropy([0.5, 0.5], [0.4, 0.6]) - 0.0204110) < 1e-6\n"
        "assert type(sys.modules['scipy'].stats).__name__ == 'module'\n"
        "import altair\n"
        "assert altair.Chart.__module__.startswith('altair.') and type(sys.modules['altair']).__name__ == 'module'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
