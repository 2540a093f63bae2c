"""Data-quality checks (great-expectations 1.x, in memory) on mapped frames.

`check_mapped` runs them in the quality worker when one was started (`worker.start`), else in
this process. Names are imported on first use, so that `worker.start()` spawns the worker
before this process imports pandas.
"""

__all__ = ["CheckOutcome", "check_mapped", "check_volume", "warm_up"]


def __getattr__(name: str):
    if name == "check_mapped":
        from hg_pipeline.quality.worker import check_mapped

        return check_mapped
    if name in ("CheckOutcome", "check_volume", "warm_up"):
        from hg_pipeline.quality import suites

        return getattr(suites, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
