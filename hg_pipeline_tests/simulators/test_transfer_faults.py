"""The simulator's broken transfers, seen on the wire by a plain socket client."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest

from hg_pipeline.simulators.connectwise import API_PREFIX, DEMO_CREDENTIALS as DEMO

AUTH = base64.b64encode(f"{DEMO['company_id']}+{DEMO['public_key']}:{DEMO['private_key']}".encode()).decode()


class Answer:
    def __init__(self) -> None:
        self.head: dict[str, str] = {}
        self.body = b""
        self.reads: list[int] = []  # bytes per recv of the body
        self.ending = "eof"  # or "reset"

    @property
    def length(self) -> int:
        return int(self.head["content-length"])


def raw_get(sim, path: str) -> Answer:
    """GET API_PREFIX + path with Connection: close, read to the end, and say how it ended."""
    answer = Answer()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as conn:
        conn.sendall(f"GET {API_PREFIX}{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {AUTH}\r\n"
                     f"clientId: {DEMO['client_id']}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, answer.body = data.split(b"\r\n\r\n", 1)
        for line in head.decode().split("\r\n")[1:]:
            name, value = line.split(":", 1)
            answer.head[name.strip().lower()] = value.strip()
        try:
            while chunk := conn.recv(65536):
                answer.reads.append(len(chunk))
                answer.body += chunk
        except ConnectionResetError:
            answer.ending = "reset"
    return answer


def test_cut_body_closes_after_part_of_the_announced_length(sim):
    sim.break_transfers("cut_body", path="/system/members", first=1)
    cut, whole = raw_get(sim, "/system/members"), raw_get(sim, "/system/members")
    assert cut.ending == "eof" and cut.length == whole.length == len(whole.body)
    assert 0 < len(cut.body) < cut.length and whole.body.startswith(cut.body)


def test_reset_mid_body_tears_the_connection_after_part_of_the_body(sim):
    sim.break_transfers("reset_mid_body", path="/system/members", first=1)
    reset, whole = raw_get(sim, "/system/members"), raw_get(sim, "/system/members")
    assert reset.ending == "reset" and whole.ending == "eof"
    assert 0 < len(reset.body) < reset.length and whole.body.startswith(reset.body)


def test_drip_sends_one_byte_at_a_time(sim):
    sim.break_transfers("drip", path="/company/companies/count", interval=0.05)
    started = time.monotonic()
    dripped = raw_get(sim, "/company/companies/count")
    elapsed = time.monotonic() - started
    assert json.loads(dripped.body) == {"count": 40}  # all of it, in the end
    assert set(dripped.reads) == {1} and elapsed >= (dripped.length - 1) * 0.05


def test_undecodable_bodies_are_complete_but_spoiled_in_the_order_given(sim):
    for mode in ("bad_gzip", "bad_utf8", "bad_json"):
        sim.break_transfers(mode, path="/system/members", first=1)
    gzipped, utf8, not_json, fine = (raw_get(sim, "/system/members") for _ in range(4))
    for answer in (gzipped, utf8, not_json, fine):
        assert answer.ending == "eof" and len(answer.body) == answer.length
    assert gzipped.head["content-encoding"] == "gzip" and gzipped.body == fine.body  # announced, not done
    with pytest.raises(UnicodeDecodeError):
        utf8.body.decode("utf-8")
    with pytest.raises(ValueError):
        json.loads(not_json.body)
    assert len(json.loads(fine.body)) == 12


def test_faults_apply_to_their_path_page_and_count_only(sim):
    sim.break_transfers("bad_json", path="/company/contacts", page=2, first=2)
    assert len(json.loads(raw_get(sim, "/company/contacts?page=1").body)) == 25  # another page
    assert len(json.loads(raw_get(sim, "/system/members").body)) == 12  # another path
    for _ in range(2):
        with pytest.raises(ValueError):
            json.loads(raw_get(sim, "/company/contacts?page=2").body)
    assert len(json.loads(raw_get(sim, "/company/contacts?page=2").body)) == 25  # the first two only


def test_a_fault_without_first_lasts_until_mended(sim):
    sim.break_transfers("cut_body")  # every API path
    for path in ("/system/members", "/company/companies", "/system/members"):
        answer = raw_get(sim, path)
        assert len(answer.body) < answer.length
    sim.mend_transfers()
    answer = raw_get(sim, "/system/members")
    assert len(answer.body) == answer.length


def test_bad_fault_requests_are_refused(sim):
    with pytest.raises(ValueError, match="unknown transfer fault 'slow'"):
        sim.break_transfers("slow")
    with pytest.raises(ValueError, match="first must be at least 1"):
        sim.break_transfers("drip", first=0)


def test_stop_ends_a_drip_in_progress(sim):
    sim.break_transfers("drip", interval=30)
    answers: list[Answer] = []
    reader = threading.Thread(target=lambda: answers.append(raw_get(sim, "/system/members")))
    reader.start()
    while not sim.requests:
        time.sleep(0.01)
    started = time.monotonic()
    sim.stop()
    reader.join(timeout=5)
    assert not reader.is_alive() and time.monotonic() - started < 3
    assert answers[0].body == b""
