"""The ConnectWise spend reader against the simulator: one additions call per active agreement,
kept within the rate budget, and the window rule."""

from __future__ import annotations

from hg_pipeline.connectors import cw_spend
from hg_pipeline.connectors.connectwise import ConnectWiseConnector
from hg_pipeline.simulators.connectwise import DEMO_CREDENTIALS, ConnectWiseSimulator
from hg_pipeline.simulators.datasets import generate


def read_lines(connector) -> list[dict]:
    return [connector.normalize("spend", payload) for page in connector.iter_pages("spend") for payload in page]


def test_the_additions_calls_stay_within_the_rate_budget():
    with ConnectWiseSimulator(generate("small", seed=1)) as sim:
        rate = 10.0
        sim.rate_limit = (12, 1.0)  # the vendor's limit: an unpaced read of ~30 requests breaks it
        connector = ConnectWiseConnector(sim.base_url, DEMO_CREDENTIALS, requests_per_second=rate)
        connector.spend_until = "2026-06"
        _ = connector.api_root  # the codebase lookup is outside the count below
        asked = sim.requests
        with connector:
            lines = read_lines(connector)
        requests = sim.requests - asked
        times = list(sim.request_times)[-requests:]
        active = [a for a in sim.dataset.agreements if a["agreementStatus"] == "Active"]
        additions = {path: n for path, n in sim.requests_by_path.items() if path.endswith("/additions")}
    assert lines
    assert len(additions) == len(active) and set(additions.values()) == {1}  # N+1: one call per agreement
    assert sim.rejected == 0  # never beyond the vendor's limit
    assert requests > len(active)
    # paced by the connector's limiter: no rolling second holds more than its budget (a little jitter allowed)
    assert max(sum(1 for u in times if t <= u < t + 0.95) for t in times) <= rate


def test_window_months_and_billing_rule():
    assert cw_spend.window("2026-02", 3) == ["2025-12", "2026-01", "2026-02"]
    agreement = {"startDate": "2025-11-01T00:00:00Z", "noEndingDateFlag": False, "endDate": "2026-01-01T00:00:00Z"}
    months = cw_spend.window("2026-03", 6)
    addition = {"billCustomer": "Billable", "effectiveDate": "2025-12-01T00:00:00Z", "cancelledDate": None}
    assert cw_spend.billed_months(agreement, addition, months) == ["2025-12", "2026-01"]
    assert cw_spend.billed_months(agreement, dict(addition, cancelledDate="2026-01-01T00:00:00Z"),
                                  months) == ["2025-12"]
    assert cw_spend.billed_months(agreement, dict(addition, billCustomer="NoCharge"), months) == []
    assert cw_spend.billed_months(dict(agreement, noEndingDateFlag=True), addition,
                                  months) == ["2025-12", "2026-01", "2026-02", "2026-03"]


def test_a_quarterly_addition_is_spread_over_its_months_and_a_bad_amount_is_refused():
    payload = {"id": "add-7-2026-01", "month": "2026-01",
               "agreement": {"id": 3, "company": {"id": 12}, "billingCycle": {"name": "Quarterly"}},
               "addition": {"id": 7, "product": {"id": 40}, "extPrice": 100.0, "description": "Backup"}}
    record = ConnectWiseConnector("http://127.0.0.1:9", DEMO_CREDENTIALS).normalize("spend", payload)
    assert record == {"psa_id": "add-7-2026-01", "company_psa_id": "12", "product_psa_id": "40", "category": None,
                      "month": "2026-01", "amount": "33.33", "currency": "USD", "description": "Backup"}
    from hg_pipeline.connectors.records import RecordError
    import pytest
    with pytest.raises(RecordError, match="extPrice is not a number"):
        ConnectWiseConnector("http://127.0.0.1:9", DEMO_CREDENTIALS).normalize(
            "spend", dict(payload, addition=dict(payload["addition"], extPrice="lots")))
