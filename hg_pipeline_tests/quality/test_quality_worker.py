"""The quality worker: great-expectations in a process of its own, the same outcome as here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from hg_pipeline.entities import ENTITY_LOADS
from hg_pipeline.quality import suites, worker


def _assets(n: int) -> pd.DataFrame:
    frame = pd.DataFrame({"tenant_id": "t1", "id": [f"a{i}" for i in range(n)], "psa_id": [str(i) for i in range(n)],
                          "company_id": [f"c{i % 7}" for i in range(n)]})
    for column in ENTITY_LOADS["assets"].columns:
        if column not in frame:
            frame[column] = "x"
    frame.loc[3, "psa_id"] = "5"  # twice
    frame.loc[4, "company_id"] = None
    return frame


class _Chunks:
    def __init__(self, frame: pd.DataFrame, size: int) -> None:
        self.frame, self.size = frame, size

    def __iter__(self):
        for start in range(0, len(self.frame), self.size):
            yield self.frame.iloc[start:start + self.size].reset_index(drop=True)


@pytest.fixture
def started(monkeypatch):
    # This test process may have great-expectations loaded (other tests check here), and then
    # check_mapped keeps the checks here: these tests are about the worker's side.
    monkeypatch.setattr(suites, "ready", lambda: False)
    worker.start()
    assert worker.running()
    yield
    worker.stop()


def test_the_worker_finds_what_this_process_finds(started):
    frame = _assets(1000)
    known = {f"c{i}" for i in range(6)}  # c6 unknown
    here = suites.check_mapped("assets", frame, company_ids=known)
    assert not here.passed and "psa_id not unique" in here.description and "company_id null" in here.description
    assert worker.check_mapped("assets", frame, company_ids=known) == here
    chunked = suites.check_mapped("assets", _Chunks(frame, 300), company_ids=known)
    assert worker.check_mapped("assets", _Chunks(frame, 300), company_ids=known) == chunked
    assert "company_id not in company_ids" in chunked.description
    assert worker.running()  # answered, still there for the next check


def test_an_error_in_the_worker_is_raised_here_and_the_worker_goes_on(started):
    with pytest.raises(ValueError, match="unknown entity 'gadgets'"):
        worker.check_mapped("gadgets", _assets(10))
    with pytest.raises(ValueError, match="unknown entity 'gadgets'"):  # chunks sent after the failure: read
        worker.check_mapped("gadgets", _Chunks(_assets(100), 10))
    assert worker.check_mapped("assets", _assets(10)).description.startswith("psa_id not unique")


def test_a_worker_that_died_leaves_the_checks_to_this_process(started):
    killed = worker.pid()
    os.kill(killed, signal.SIGKILL)
    while _alive(killed):
        time.sleep(0.05)
    frame = _assets(500)
    assert worker.check_mapped("assets", _Chunks(frame, 200)) == suites.check_mapped("assets", _Chunks(frame, 200))
    assert not worker.running()


def test_the_worker_ends_with_its_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c", "from hg_pipeline.quality import worker; import time; worker.start(); "
                               "print(worker.pid(), flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)  # no chance to stop it: its stdin closes with the parent
    parent.wait()
    deadline = time.monotonic() + 30  # it may still be importing great-expectations
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def test_checks_can_be_kept_in_this_process(monkeypatch):
    worker.stop()
    monkeypatch.setenv(worker.IN_PROCESS_ENV, "1")
    worker.start()
    assert not worker.running()
    assert worker.check_mapped("assets", _assets(10)) == suites.check_mapped("assets", _assets(10))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("kind, in_worker", [("remap", True), ("nightly", True), ("full", False), ("initial", False)])
def test_short_runs_check_in_the_worker_a_full_sync_in_its_own_process(kind, in_worker, monkeypatch):
    """A full sync's peak memory has no room for a second interpreter: it checks in its process."""
    worker.stop()
    monkeypatch.setattr(suites, "ready", lambda: False)  # a new process: great-expectations not loaded
    try:
        worker.prepare(kind)
        assert worker.running() is in_worker
    finally:
        worker.stop()


def test_a_process_with_great_expectations_loaded_checks_here(monkeypatch):
    worker.stop()
    suites.warm_up()
    worker.prepare("remap")
    assert not worker.running()
    worker.start()  # one started anyway (an earlier run's): this process's own context is used

    def sent(*args):
        raise AssertionError("sent to the worker")

    monkeypatch.setattr(worker, "_ask", sent)
    try:
        assert worker.check_mapped("assets", _assets(10)) == suites.check_mapped("assets", _assets(10))
        assert worker.running()
    finally:
        worker.stop()
