"""The quality checks in a process of their own, started before the run needs them.

great-expectations takes over a second to import (its expectations, metrics and data context
modules), and a sync process otherwise pays it on its one busy core before the first check.
`start()` spawns `python -m hg_pipeline.quality.worker`, which imports it and builds its
context on the machine's other core while this process imports Dagster and runs the
extraction or the first map; `check_mapped` then sends the frame to validate and gets the
`CheckOutcome` back (the same function, `suites.check_mapped`, runs there). A threaded import
gains nothing: both threads would take turns on the interpreter lock.

The worker reads requests on its stdin and answers on its stdout, one at a time, each a
length-prefixed pickle; a set checked in chunks is sent chunk by chunk, so neither side holds
more than one chunk. It exits when its stdin closes, so it never outlives its parent (killed
or not). When it cannot be started, or stops, the checks run in this process as before:
`check_mapped` needs frames it can read again for that (a DataFrame, or a re-iterable of them).
`HG_CHECKS_IN_PROCESS=1` keeps them in this process.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable

IN_PROCESS_ENV = "HG_CHECKS_IN_PROCESS"
# The runs whose checks go to a worker: short ones, whose first check comes within seconds and
# whose memory is small. A full sync keeps them in its own process: its peak (the assets' map and
# check) has no room for a second interpreter with great-expectations (about 200 MiB more; at
# ten times the large dataset past 1 GiB), and its extraction is long enough to hide little.
WORKER_KINDS = ("nightly", "remap")
CHECKING_KINDS = ("full", *WORKER_KINDS)
_HEADER = struct.Struct("!Q")
_END = "end"  # the message after the last chunk of a chunked set

_lock = threading.Lock()
_worker: subprocess.Popen | None = None


def prepare(kind: str, log_level: str | None = None) -> None:
    """Ready great-expectations for a run of `kind`: a worker started (WORKER_KINDS), or loaded
    in this process now (a full sync); nothing for a run that checks nothing, or when this
    process has it loaded already (a long-lived one: the bench, a test session)."""
    from hg_pipeline.quality import suites

    if kind not in CHECKING_KINDS or suites.ready():
        return
    if kind in WORKER_KINDS:
        start(log_level)
    elif not running():
        suites.warm_up()


def start(log_level: str | None = None) -> None:
    """Spawn the worker unless one runs (or checks are kept in this process); never raises.
    `log_level` (the CLI's, e.g. "INFO" with --verbose): the worker logs at it to this
    process's stderr; without one, or at CRITICAL (the CLI's quiet default), it says nothing."""
    global _worker
    if os.environ.get(IN_PROCESS_ENV, "").strip() in ("1", "true", "yes"):
        return
    speaks = log_level is not None and log_level.upper() != "CRITICAL"
    with _lock:
        if _live() is not None:
            return
        try:
            _worker = subprocess.Popen(
                [sys.executable, "-m", "hg_pipeline.quality.worker", *(["--log-level", log_level] if speaks else [])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None if speaks else subprocess.DEVNULL,
                close_fds=True)
        except OSError:
            _worker = None


def stop() -> None:
    """End the worker (closing its stdin ends it) and wait for it."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None:
        _close(worker)


def running() -> bool:
    return _live() is not None


def pid() -> int | None:
    """The running worker's process id."""
    worker = _live()
    return worker.pid if worker is not None else None


def _live() -> subprocess.Popen | None:
    """The worker, if it is still running."""
    worker = _worker
    return worker if worker is not None and worker.poll() is None else None


def check_mapped(entity: str, df, **options):
    """`suites.check_mapped`: here when great-expectations is loaded here, else in the worker
    when one runs, else (or when it stops) here. `df`: a DataFrame or a re-iterable of
    DataFrames (chunks)."""
    from hg_pipeline.quality import suites

    with _lock:
        worker = _live()
        if worker is not None and not suites.ready():
            try:
                return _ask(worker, entity, df, options)
            except (OSError, EOFError, pickle.UnpicklingError):
                _close(worker)  # it stopped (killed, out of memory): checked here from now on
    return suites.check_mapped(entity, df, **options)


def _ask(worker: subprocess.Popen, entity: str, df, options: dict):
    import pandas as pd

    chunked = not isinstance(df, pd.DataFrame)
    _send(worker.stdin, ("check_mapped", entity, options, None if chunked else df))
    if chunked:
        for chunk in df:
            _send(worker.stdin, chunk)
        _send(worker.stdin, _END)
    worker.stdin.flush()
    status, value = _receive(worker.stdout)
    if status == "ok":
        return value
    kind, message = value
    raise (ValueError if kind == "ValueError" else RuntimeError)(message)


def _close(worker: subprocess.Popen) -> None:
    global _worker
    if _worker is worker:
        _worker = None
    try:
        worker.stdin.close()
    except OSError:
        pass
    try:
        worker.wait(timeout=5)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    worker.stdout.close()


def _send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)


def _receive(stream):
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the quality worker stopped")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the quality worker stopped")
    return pickle.loads(data)


# --- the worker's side ---------------------------------------------------------------


def serve(requests, answers) -> None:
    """Answer check requests from `requests` on `answers` until `requests` ends."""
    from hg_pipeline.quality import suites

    suites.warm_up()
    while True:
        try:
            _, entity, options, frame = _receive(requests)
        except EOFError:
            return
        chunks = _Chunks(requests) if frame is None else None
        try:
            answer = ("ok", suites.check_mapped(entity, frame if chunks is None else chunks, **options))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which raises it
            answer = ("error", (type(exc).__name__, str(exc)))
        if chunks is not None:
            chunks.drain()  # a failure before the last chunk: the rest is still on its way
        _send(answers, answer)
        answers.flush()


class _Chunks(Iterable):
    """The chunks of one request as they arrive (read once)."""

    def __init__(self, requests) -> None:
        self._requests = requests
        self._ended = False

    def __iter__(self):
        while not self._ended:
            message = _receive(self._requests)
            if isinstance(message, str) and message == _END:
                self._ended = True
                return
            yield message

    def drain(self) -> None:
        for _ in self:
            pass


def main(argv: list[str]) -> None:
    if argv[:1] == ["--log-level"]:
        import logging

        from hg_pipeline import secrets

        logging.basicConfig(level=argv[1].upper(), format="%(levelname)s %(name)s: %(message)s", force=True)
        secrets.install_log_scrubbing()
    # The answers get stdout's pipe to themselves: whatever a library prints goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)
    answers.close()
    os._exit(0)  # no teardown of great-expectations' modules (most of a second of CPU): nothing to keep


if __name__ == "__main__":
    main(sys.argv[1:])
