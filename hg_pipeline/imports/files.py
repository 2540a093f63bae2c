"""Import files read as a stream, every record with where it came from.

A file holds one entity, named by the start of its file name (`companies.csv`,
`contacts-2026-11.jsonl`, `spend_q3.json`). Formats, by extension:

- `.csv` (or `.txt`, `.tsv`): a header row of field names, then one record per row. UTF-8 with or
  without a byte-order mark; the separator is found from the header (comma, semicolon, tab or
  pipe); quoting as RFC 4180 (a quoted cell may hold separators, quotes as "" and line breaks);
  an empty cell is an absent value. Read row by row: memory does not grow with the file.
- `.jsonl` / `.ndjson`: one JSON object per line; read line by line.
- `.json`: an array of objects, read whole (use JSON Lines for files of more than
  `JSON_ARRAY_LIMIT` bytes).

Files are read once: `Checked.pages` checks every record as it streams by and hands the
good ones on in pages for staging (into the extraction under way, which no map stage reads);
after the first problem it stages nothing more but reads on, so that every problem (up to
`MAX_PROBLEMS`) is reported, each as one line with file, line, column or field, and reason,
and the import is refused with nothing staged (`Checked.refusal`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from hg_pipeline.imports.formats import IMPORT_ENTITIES, format_of
from hg_pipeline.imports.normalize import record_key
from hg_pipeline.imports.validate import check

CSV_SUFFIXES, JSONL_SUFFIXES, JSON_SUFFIXES = (".csv", ".txt", ".tsv"), (".jsonl", ".ndjson"), (".json",)
SEPARATORS = ",;\t|"
JSON_ARRAY_LIMIT = 256 * 1024 * 1024
MAX_PROBLEMS = 20
PAGE_SIZE = 5_000


class FileRefused(ValueError):
    """The import was refused before anything was staged; `problems` are one line each."""

    def __init__(self, problems: list[str], more: int = 0) -> None:
        self.problems = problems
        self.more = more
        others = len(problems) - 1 + more
        extra = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        super().__init__(problems[0] + extra)


@dataclass(frozen=True)
class ImportFile:
    path: Path
    entity: str
    kind: str  # csv | jsonl | json

    @property
    def name(self) -> str:
        return self.path.name


def identify(path: str | Path) -> ImportFile:
    """The entity and format of `path` from its name; FileRefused when neither is clear."""
    path = Path(path)
    suffix = path.suffix.lower()
    kind = ("csv" if suffix in CSV_SUFFIXES else "jsonl" if suffix in JSONL_SUFFIXES
            else "json" if suffix in JSON_SUFFIXES else None)
    if kind is None:
        raise FileRefused([f"{path.name}: not a .csv, .json or .jsonl file"])
    stem = path.stem.lower()
    entity = next((e for e in sorted(IMPORT_ENTITIES, key=len, reverse=True)
                   if stem == e or (stem.startswith(e) and not stem[len(e)].isalnum())), None)
    if entity is None:
        raise FileRefused([f"{path.name}: the file name must start with the entity it holds "
                           f"({', '.join(IMPORT_ENTITIES)}), e.g. companies.csv"])
    if not path.is_file():
        raise FileRefused([f"{path}: no such file"])
    return ImportFile(path, entity, kind)


@dataclass
class Checked:
    """Every record of a set of files checked as it streams by: the problems, and the ids given
    so far (unique per entity across the files)."""

    files: list[ImportFile]
    problems: list[str] = field(default_factory=list)
    more: int = 0  # problems beyond MAX_PROBLEMS
    # entity -> id -> (file number, position) where it was first given: small, for a million ids
    seen: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.more += 1

    def refusal(self) -> FileRefused | None:
        return FileRefused(self.problems, self.more) if self.problems else None

    def sources(self) -> dict[str, Callable[[], Iterator[list[dict]]]]:
        """entity -> its pages, as `batches.stage_batch` takes them."""
        return {entity: (lambda entity=entity: self.pages(entity))
                for entity in dict.fromkeys(f.entity for f in self.files)}

    def pages(self, entity: str) -> Iterator[list[dict]]:
        """The typed records of `entity`'s files, PAGE_SIZE at a time, for as long as no problem
        has been found; every record is read and checked either way."""
        page: list[dict] = []
        ids = self.seen.setdefault(entity, {})
        for number, f in enumerate(self.files):
            if f.entity != entity:
                continue
            for position, where, raw, text_values in _raw_records(f, self):
                record, problems = check(entity, raw, text_values=text_values)
                if problems:
                    for problem in problems:
                        self.problem(f"{f.name}, {where(problem.field)}: {problem.reason}")
                    continue
                key = record_key(entity, record)
                first = ids.get(key)
                if first is not None:
                    what = "id" if "id" in record else "company_id, product_id, month and currency"
                    unit = "line" if self.files[first[0]].kind != "json" else "record"
                    self.problem(f"{f.name}, {where('id' if 'id' in record else None)}: {what} {key!r} "
                                 f"given twice (first in {self.files[first[0]].name}, {unit} {first[1]})")
                    continue
                ids[key] = (number, position)
                if self.problems:
                    continue  # nothing more is staged: the import will be refused
                page.append(record)
                if len(page) >= PAGE_SIZE:
                    yield page
                    page = []
        if page and not self.problems:
            yield page


def _raw_records(f: ImportFile, checked: Checked) -> Iterator[tuple]:
    """(position, where, raw record, text_values) for every record of `f`: position is its
    line (CSV, JSON Lines) or its number (JSON array), `where(field)` says it in words; a problem of the file itself
    (not UTF-8, broken quoting, a bad header) is added to `checked` and ends the file."""
    try:
        if f.kind == "csv":
            yield from _csv_records(f, checked)
        elif f.kind == "jsonl":
            yield from _jsonl_records(f, checked)
        else:
            yield from _json_records(f, checked)
    except UnicodeDecodeError as exc:
        checked.problem(f"{f.name}: not UTF-8 text (byte {exc.start} of a chunk: {exc.reason})")
    except OSError as exc:
        checked.problem(f"{f.name}: cannot be read ({exc.strerror or exc})")


def _csv_records(f: ImportFile, checked: Checked) -> Iterator[tuple]:
    fmt = format_of(f.entity)
    with open(f.path, encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
        if not first.strip():
            checked.problem(f"{f.name}, line 1: the header row is missing")
            return
        separator = max(SEPARATORS, key=first.count) if any(s in first for s in SEPARATORS) else ","
        handle.seek(0)  # the utf-8-sig decoder skips a byte-order mark again
        reader = csv.reader(handle, delimiter=separator, strict=True)
        try:
            header = [name.strip().lower() for name in next(reader)]
        except csv.Error as exc:
            checked.problem(f"{f.name}, line 1: the header row is not valid CSV ({exc})")
            return
        bad = False
        for column, name in enumerate(header, 1):
            if fmt.field(name) is None:
                checked.problem(f"{f.name}, line 1, column {column}: unknown column {name!r} "
                                f"(expected: {', '.join(fmt.names)})")
                bad = True
            elif header.index(name) != column - 1:
                checked.problem(f"{f.name}, line 1, column {column}: column {name!r} appears twice")
                bad = True
        for required in (x.name for x in fmt.fields if x.required):
            if required not in header:
                checked.problem(f"{f.name}, line 1: the required column {required!r} is missing")
                bad = True
        if bad:
            return
        columns = {name: i + 1 for i, name in enumerate(header)}
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                checked.problem(f"{f.name}, line {start}: not valid CSV ({exc})")
                return
            line, start = start, reader.line_num + 1
            if not row or row == [""]:
                continue
            if len(row) != len(header):
                checked.problem(f"{f.name}, line {line}: {len(row)} cells, the header has {len(header)}")
                continue

            def where(name: str | None, line=line) -> str:
                if name is None or name not in columns:
                    return f"line {line}"
                return f"line {line}, column {columns[name]} ({name})"

            yield line, where, dict(zip(header, row)), True


def _jsonl_records(f: ImportFile, checked: Checked) -> Iterator[tuple]:
    with open(f.path, "rb") as handle:
        for line, raw in enumerate(handle, 1):
            if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                checked.problem(f"{f.name}, line {line}: not valid JSON ({_json_reason(exc)})")
                continue
            if not isinstance(value, dict):
                checked.problem(f"{f.name}, line {line}: not a JSON object")
                continue
            yield line, (lambda name, line=line: f"line {line}" + (f", field {name}" if name else "")), value, False


def _json_records(f: ImportFile, checked: Checked) -> Iterator[tuple]:
    if f.path.stat().st_size > JSON_ARRAY_LIMIT:
        checked.problem(f"{f.name}: a JSON array of over {JSON_ARRAY_LIMIT // 2**20} MiB; "
                        "give large files as JSON Lines (.jsonl), one object per line")
        return
    text = f.path.read_bytes()
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        checked.problem(f"{f.name}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})")
        return
    except UnicodeDecodeError as exc:
        checked.problem(f"{f.name}: not UTF-8 text ({exc.reason})")
        return
    if not isinstance(value, list):
        checked.problem(f"{f.name}: a .json file holds an array of records (use .jsonl for one per line)")
        return
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            checked.problem(f"{f.name}, record {index + 1}: not a JSON object")
            continue
        yield index + 1, (lambda name, index=index: f"record {index + 1}" + (f", field {name}" if name else "")), item, False


def _json_reason(exc: Exception) -> str:
    return str(exc).split(":")[0]
