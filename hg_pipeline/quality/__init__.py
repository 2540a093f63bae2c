"""Data-quality checks (great-expectations 1.x, in memory) on mapped frames."""

from hg_pipeline.quality.suites import CheckOutcome, check_mapped, check_volume, warm_up

__all__ = ["CheckOutcome", "check_mapped", "check_volume", "warm_up"]
