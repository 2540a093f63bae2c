"""The no-PSA source: records an MSP pushes as files (`hg-pipeline import`) or through the HTTP
import API (`hg-pipeline serve-import-api`).

    formats.py    the record format of each entity, as data, and its JSON Schema
    validate.py   one record checked against its format: a typed record or (field, reason) problems
    files.py      CSV, JSON and JSON Lines files read as a stream, each record with its line
    normalize.py  an import record -> the normalized record every source produces
    batches.py    a batch staged through the same extract stage a PSA uses (`extract.stage_pages`)
    tokens.py     per-tenant bearer tokens of the import API, stored hashed
    api.py        the HTTP import API (FastAPI)
"""
