"""The soft-delete volume check tells rows that vanished from rows that leave by mapping."""

import pytest

from hg_pipeline.quality.suites import DEFAULT_MAX_SOFT_DELETE_SHARE, check_volume


@pytest.mark.parametrize(
    "would_delete, by_mapping, accepted, passed, description",
    [
        (40, 40, 0, False, "would soft-delete 40 of 100 companies: 0 vanished, 40 by mapping (40% > 20%)"),
        (15, 10, 0, True, "would soft-delete 15 of 100 companies: 5 vanished, 10 by mapping (15% <= 20%)"),
        (40, 40, 40, True, "would soft-delete 40 of 100 companies: 0 vanished, 40 by mapping "
                           "(40 accepted with the mapping version); 0 counted (0% <= 20%)"),
        # accepting more than leaves forgives only what leaves by mapping
        (70, 40, 100, False, "would soft-delete 70 of 100 companies: 30 vanished, 40 by mapping "
                             "(40 accepted with the mapping version); 30 counted (30% > 20%)"),
        # what leaves beyond the accepted count counts again
        (60, 60, 39, False, "would soft-delete 60 of 100 companies: 0 vanished, 60 by mapping "
                           "(39 accepted with the mapping version); 21 counted (21% > 20%)"),
    ],
)
def test_by_mapping_passes_up_to_the_accepted_count_and_vanished_always_counts(
        would_delete, by_mapping, accepted, passed, description):
    outcome = check_volume("companies", current_active=100, would_delete=would_delete, by_mapping=by_mapping,
                           accepted=accepted)
    assert outcome.description == description
    assert outcome.passed is passed
    if not outcome.passed:
        (failure,) = outcome.failures
        assert (failure["vanished"], failure["by_mapping"]) == (would_delete - by_mapping, by_mapping)


def test_the_default_share_is_one_fifth():
    assert DEFAULT_MAX_SOFT_DELETE_SHARE == 0.2
    assert check_volume("assets", current_active=10, would_delete=2, by_mapping=2).passed
    assert not check_volume("assets", current_active=10, would_delete=3, by_mapping=3).passed
