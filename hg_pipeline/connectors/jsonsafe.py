"""JSON from a PSA, decoded without the risks of a hostile body.

Python's decoder recurses once per nesting level: about 1,000 levels end in RecursionError
(and so would `json.dumps` of what it built). Every body is first scanned for its nesting
depth, which costs about a tenth of the decoding itself:

- `decode_json` refuses a body nested deeper than `MAX_DEPTH` (ValueError, like any body
  that is not JSON);
- `decode_records` decodes a page (a JSON list of records) record by record when the page as
  a whole cannot be decoded safely: a record nested deeper than `MAX_DEPTH`, or one that is not
  valid JSON on its own (an integer of more than 4,300 digits) becomes an `UnreadableRecord`
  for the quarantine, and the rest of the page is decoded as usual. A page whose brackets or
  strings do not balance is not JSON (ValueError).
"""

from __future__ import annotations

import json
import re

import orjson

from hg_pipeline.connectors.records import UnreadableRecord

MAX_DEPTH = 64  # nesting levels of one record ({"a": {"b": 1}} is 2 deep)
EXCERPT = 2000  # characters of an unreadable record kept for the quarantine

_ESCAPE = re.compile(rb"\\.", re.S)
_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))  # bytes translate() deletes
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.S)
_OWN_ID = re.compile(r'\s*:\s*(-?\d{1,200})\b')


def within_depth(data: bytes, limit: int) -> bool:
    """True when `data` is balanced JSON text nested at most `limit` deep (False also for
    unbalanced text). Works on the brackets alone, strings taken out first."""
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    brackets = b"".join(data.translate(None, _STRUCTURE).split(b'"')[::2]).translate(_PARENS)
    for _ in range(limit):  # each pass takes away one level of innermost pairs
        if not brackets:
            return True
        inner = brackets.replace(b"()", b"")
        if inner == brackets:
            return False  # unbalanced
        brackets = inner
    return not brackets


def decode_json(data: bytes) -> object:
    """`json.loads(data)` for a body nested at most MAX_DEPTH + 1 deep (a list of records)."""
    if not within_depth(data, MAX_DEPTH + 1):
        data.decode("utf-8")  # UnicodeDecodeError first, as json.loads would
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH + 1} levels, or not balanced")
    return _loads(data)


def decode_records(data: bytes) -> object:
    """A page body: its records, with those that cannot be decoded safely replaced by an
    `UnreadableRecord`; any other JSON body as `decode_json` decodes it."""
    if within_depth(data, MAX_DEPTH + 1):
        try:
            return _loads(data)
        except UnicodeDecodeError:
            raise
        except ValueError:
            pass  # one record may be at fault: decoded one by one below
    text = data.decode("utf-8-sig")
    if not text.lstrip().startswith("["):
        return decode_json(data)
    return [_record(text[start:end].strip(), depth) for start, end, depth in _elements(text)]


def _loads(data: bytes) -> object:
    """`json.loads(data)`, by orjson (a large page decodes about twice as fast) wherever orjson
    can: what it refuses (integers beyond 64 bits, NaN, lone surrogates, UTF-16) goes to json,
    which decodes it or raises as it always did."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _elements(text: str) -> list[tuple[int, int, int]]:
    """(start, end, depth) of each element of the JSON list `text`; ValueError when its
    brackets or strings do not balance, or an element is empty."""
    elements: list[tuple[int, int, int]] = []
    depth, start, deepest, closed, end = 0, 0, 0, False, len(text)
    for token in _TOKEN.finditer(text):
        kind = token.group()[0]
        if closed:
            raise ValueError("body is not JSON: text after the list")
        if kind in "[{":
            depth += 1
            if depth == 1:
                start = token.end()
            deepest = max(deepest, depth - 1)
        elif kind in "]}":
            if depth == 1:
                closed, end = True, token.end()
                if text[start:token.start()].strip() or elements:
                    elements.append((start, token.start(), deepest))
            depth -= 1
        elif kind == "," and depth == 1:
            elements.append((start, token.start(), deepest))
            start, deepest = token.end(), 0
    if not closed or depth != 0:
        raise ValueError("body is not JSON: brackets do not balance")
    if text[end:].strip():
        raise ValueError("body is not JSON: text after the list")
    if any(not text[s:e].strip() for s, e, _ in elements):
        raise ValueError("body is not JSON: an empty element")
    return elements


def _record(source: str, depth: int) -> object:
    """One element of a page: decoded, or an UnreadableRecord saying why not."""
    if depth > MAX_DEPTH:
        reason = f"nested deeper than {MAX_DEPTH} levels"
    else:
        try:
            return json.loads(source)
        except ValueError as error:
            reason = f"not valid JSON ({str(error).split(';')[0][:120]})"
    excerpt = source if len(source) <= EXCERPT else source[:EXCERPT] + "...(cut)"
    return UnreadableRecord(reason, _own_id(source), excerpt)


def _own_id(source: str) -> str | None:
    """The value of the record's own top-level "id" key, when it is a number."""
    if not source.startswith("{"):
        return None
    depth = 0
    for token in _TOKEN.finditer(source):
        kind = token.group()[0]
        if kind in "[{":
            depth += 1
        elif kind in "]}":
            depth -= 1
        elif kind == '"' and depth == 1 and token.group() == '"id"':
            number = _OWN_ID.match(source, token.end())
            if number:
                return number.group(1)
    return None
