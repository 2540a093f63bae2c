"""`hg-pipeline`: the command line of the product contract (section 2).

Exit status 0 on success, 2 on bad input or a failed sync, with a one-line reason
on stderr (naming the field, the line or the failing step), 141 without a word when the
reader of stdout went away.
"""

from __future__ import annotations

import atexit
import os
import sys

# The console script's exit status once its work is done (`run`); None in any other process.
_finished_status: int | None = None


def _exit_without_teardown() -> None:
    """The console script's last exit handler (registered before any library's, so it runs
    after them): end the process without the interpreter's teardown. Freeing Dagster's,
    pandas' and great-expectations' thousands of module objects one by one took 0.3 to 1 s
    after every command's work was done; the system takes the memory back whole."""
    if _finished_status is None:
        return
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    from hg_pipeline.warehouse import db

    db.dispose_all()  # the warehouse sees its connections closed, not reset
    status = _finished_status
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # its reader went away (`| head`): as in `main`, a quiet SIGPIPE status
            status = status or SIGPIPE_STATUS
    os._exit(status)


atexit.register(_exit_without_teardown)

import argparse  # noqa: E402 - after the exit handler, which must be the first registered
import json  # noqa: E402
import logging  # noqa: E402

from hg_pipeline import secrets
from hg_pipeline.connectors.registry import SOURCES, demo_ready
from hg_pipeline.mapping.smart.commands import add_commands as add_smart_commands
from hg_pipeline.runtime import collect_less
from hg_pipeline.warehouse import db


# Quiet by default so that a failure is one line; --verbose (or HG_LOG_LEVEL=INFO/DEBUG) shows
# Dagster's, great-expectations' and the connectors' logs.
QUIET, VERBOSE = "CRITICAL", "INFO"
SIGPIPE_STATUS = 141  # 128 + SIGPIPE: the shell's status for a command whose reader went away


class InputError(ValueError):
    """Bad input from the command line; the message names the field."""


def run() -> None:
    """The `hg-pipeline` console script: `main`, then a quick exit (`_exit_without_teardown`).
    A traceback (a bug) or argparse's own exit leave through the interpreter's usual exit."""
    global _finished_status
    collect_less()  # the whole process: importing Dagster and the asset graph alone cost full collections
    _finished_status = main()
    sys.exit(_finished_status)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.log_level = log_level(args)
    handler = logging.StreamHandler()
    handler.setLevel(args.log_level)  # libraries that set their own logger level stay quiet too
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s", handlers=[handler],
                        force=True)
    secrets.install_log_scrubbing()
    args.database_url_given = hasattr(args, "database_url")
    if not args.database_url_given:
        args.database_url = db.default_database_url()
    try:
        return args.handler(args) or 0
    except BrokenPipeError:
        # The reader of stdout left (`| head`): stop quietly, as a command killed by SIGPIPE
        # would, and send what is still buffered nowhere rather than fail on it at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_STATUS
    except _input_errors() as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from hg_pipeline.warehouse import outage

        if not outage.is_warehouse_error(exc):
            raise
        fail(outage.describe(exc, args.database_url))  # it stopped answering: one line, no traceback
        return 2


def fail(message: str) -> None:
    """The command's one line on stderr, every secret scrubbed."""
    print(f"hg-pipeline: {secrets.scrub(message)}", file=sys.stderr)


def log_level(args) -> str:
    if getattr(args, "verbose", False):
        return os.environ.get("HG_LOG_LEVEL", VERBOSE).upper()
    return os.environ.get("HG_LOG_LEVEL", QUIET).upper()


def run_log_level(args) -> str:
    """Dagster logs a run's events (step starts, materializations, RUN_SUCCESS) at DEBUG."""
    return "DEBUG" if getattr(args, "verbose", False) and "HG_LOG_LEVEL" not in os.environ else args.log_level


def _input_errors() -> tuple[type[Exception], ...]:
    from hg_pipeline.connectors import CredentialError, PsaError
    from hg_pipeline.imports.batches import BatchError
    from hg_pipeline.imports.files import FileRefused
    from hg_pipeline.mapping.document import MappingError
    from hg_pipeline.warehouse.outage import WarehouseUnreachable
    from hg_pipeline.warehouse.load import LoadError
    from hg_pipeline.warehouse.tenants import TenantError

    return (InputError, TenantError, MappingError, CredentialError, db.DatabaseError, PsaError, LoadError, OSError,
            WarehouseUnreachable, BatchError, FileRefused)


def _engine(args, *, upgraded: bool = True):
    from hg_pipeline.warehouse.schema import outdated

    engine = db.connect(args.database_url)
    why = outdated(engine) if upgraded else None
    if why:
        raise InputError(f"the warehouse at {db.safe_url(args.database_url)} {why}: run `hg-pipeline db upgrade`")
    return engine


# --- db ---------------------------------------------------------------------------------

def cmd_db_upgrade(args) -> None:
    from hg_pipeline.warehouse.schema import global_category_count, upgrade

    engine = _engine(args, upgraded=False)
    upgrade(engine)
    print(f"warehouse {db.safe_url(args.database_url)} is up to date "
          f"({global_category_count(engine)} global categories)")


# --- tenants ----------------------------------------------------------------------------

def cmd_tenant_add(args) -> None:
    from hg_pipeline.connectors.credentials import parse_credential_args
    from hg_pipeline.warehouse.tenants import Tenant, add_tenant

    tenant = Tenant(
        tenant_id=args.tenant,
        name=args.name or args.tenant,
        source=args.source,
        base_url=args.base_url,
        credentials=parse_credential_args(args.credential or []),
        notify_email=args.notify_email,
        requests_per_second=args.requests_per_second,
    )
    add_tenant(_engine(args), tenant)
    print(f"tenant {tenant.tenant_id} added ({tenant.source}{f' at {tenant.base_url}' if tenant.base_url else ''})")


def cmd_tenant_list(args) -> None:
    from hg_pipeline.warehouse.tenants import list_tenants

    for t in list_tenants(_engine(args)):
        keys = ",".join(sorted(t.credentials))
        print(f"{t.tenant_id}\t{t.name}\t{t.source}\t{t.base_url or '-'}\t{t.notify_email or '-'}\tcredentials: {keys or '-'}")


def cmd_tenant_token(args) -> None:
    from hg_pipeline.imports import tokens

    engine = _engine(args)
    if args.revoke:
        tokens.revoke(engine, args.tenant, args.revoke)
        print(f"token {args.revoke} of tenant {args.tenant} revoked")
        return
    token = tokens.issue(engine, args.tenant)
    print(token)
    print(f"(the import API token of tenant {args.tenant}; shown once, stored hashed: keep it safe)", file=sys.stderr)


def cmd_tenant_tokens(args) -> None:
    from hg_pipeline.imports import tokens

    for row in tokens.tokens(_engine(args), args.tenant):
        state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
        print(f"{row['token_id']}\tcreated {row['created_at']:%Y-%m-%d %H:%M}\t{state}")


# --- import (tenants without a PSA) ----------------------------------------------------

def cmd_import(args) -> int | None:
    from hg_pipeline.imports import formats

    if args.schema:
        try:
            print(formats.schema_text(args.schema), end="")
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return None
    if not args.tenant or not args.files:
        raise InputError("usage: hg-pipeline import TENANT FILE... [--partial] [--sync] "
                         "(or hg-pipeline import --schema ENTITY)")
    from hg_pipeline.imports.batches import require_import_tenant, stage_batch
    from hg_pipeline.imports.files import Checked, FileRefused, identify

    engine = _engine(args)
    require_import_tenant(engine, args.tenant)
    try:
        checked = Checked([identify(path) for path in args.files])
        result = stage_batch(engine, args.tenant, checked.sources(), partial=args.partial, refusal=checked.refusal)
    except FileRefused as refused:
        fail(f"tenant {args.tenant}: import refused, nothing staged: {refused}")
        for line in refused.problems[1:]:
            print(f"  {line}", file=sys.stderr)
        if refused.more:
            print(f"  ... and {refused.more} more", file=sys.stderr)
        return 2
    print(f"tenant {args.tenant}: {result.summary()}")
    if not args.sync:
        print(f"the import_batches sensor starts the sync when the Dagster daemon runs; "
              f"or now: `hg-pipeline sync {args.tenant}`")
        return None
    from hg_pipeline.warehouse.mappings import current_mapping

    if current_mapping(engine, args.tenant) is None:
        return _run_and_report(args, "initial")
    return _run_and_report(args, "full", reconcile=True)  # as the import_batches sensor's syncs


def cmd_serve_import_api(args) -> None:
    from hg_pipeline.imports.api import serve

    _engine(args)
    serve(args.database_url, port=args.port, host=args.host)


# --- mapping ----------------------------------------------------------------------------

def _stored_mapping(engine, tenant_id: str):
    from hg_pipeline.warehouse.mappings import current_mapping
    from hg_pipeline.warehouse.tenants import get_tenant

    get_tenant(engine, tenant_id)
    stored = current_mapping(engine, tenant_id)
    if stored is None:
        raise InputError(f"tenant {tenant_id} has no mapping yet: import one with "
                         f"`hg-pipeline mapping import {tenant_id} FILE`")
    return stored


def cmd_mapping_show(args) -> None:
    stored = _stored_mapping(_engine(args), args.tenant)
    print(f"# tenant {stored.tenant_id}, mapping version {stored.version}, stored {stored.created_at:%Y-%m-%d %H:%M} UTC")
    sys.stdout.write(stored.document if stored.document.endswith("\n") else stored.document + "\n")


def cmd_mapping_export(args) -> None:
    engine = _engine(args)
    if args.version is None:
        sys.stdout.write(_stored_mapping(engine, args.tenant).document)
    else:
        sys.stdout.write(_mapping_version(engine, args.tenant, args.version).document)


def _mapping_version(engine, tenant_id: str, version: int):
    from hg_pipeline.warehouse.mappings import mapping_version

    newest = _stored_mapping(engine, tenant_id).version
    stored = mapping_version(engine, tenant_id, version)
    if stored is None:
        raise InputError(f"tenant {tenant_id} has no mapping version {version} (versions 1 to {newest})")
    return stored


def cmd_mapping_import(args) -> int | None:
    from hg_pipeline.warehouse.tenants import get_tenant

    engine = _engine(args)
    get_tenant(engine, args.tenant)
    return _store_mapping_checked(engine, args.tenant, _read_mapping_file(args.file), args.file, force=args.force)


def _read_mapping_file(path: str) -> str:
    """The file's text; one over the size limit is refused before it is read (a pipe is read up
    to the limit only)."""
    from hg_pipeline.mapping.document import MAX_DOCUMENT_BYTES, size_problem

    try:
        with open(path, encoding="utf-8") as handle:
            too_big = size_problem(os.fstat(handle.fileno()).st_size)
            if too_big:
                raise InputError(f"{path}: {too_big}; nothing stored")
            text = handle.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read mapping file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(text) > MAX_DOCUMENT_BYTES:  # a pipe, or a file that grew: read no further
        raise InputError(f"{path}: more than {MAX_DOCUMENT_BYTES:,} characters, over the limit for a mapping "
                         "document; nothing stored")
    return text


def cmd_mapping_versions(args) -> None:
    from datetime import timezone

    from hg_pipeline.warehouse.mappings import mapping_history

    engine = _engine(args)
    _stored_mapping(engine, args.tenant)
    history = mapping_history(engine, args.tenant)
    for stored in history:
        state = "in force" if stored is history[-1] else "-"
        print(f"{stored.version}\t{stored.created_at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
              f"\t{state}\t{stored.comment or '-'}")


def cmd_mapping_rollback(args) -> int | None:
    engine = _engine(args)
    target = _mapping_version(engine, args.tenant, args.version)
    if target.version == _stored_mapping(engine, args.tenant).version:
        raise InputError(f"mapping version {target.version} is already in force for tenant {args.tenant}; "
                         "nothing stored")
    return _store_mapping_checked(engine, args.tenant, target.document, f"mapping version {target.version}",
                                  force=args.force, comment=f"rollback to version {target.version}")


def _store_mapping_checked(engine, tenant_id: str, text: str, label: str, *, force: bool,
                           comment: str | None = None) -> int | None:
    """Store `text` as the next version after checking every line of it, and after checking
    what its remap would soft-delete: more than the share of an entity's live rows is refused
    unless forced, and a forced version records the deletions it accepted."""
    from hg_pipeline.mapping.document import MappingError, parse_document
    from hg_pipeline.orchestration.mapping_impact import mapping_impact
    from hg_pipeline.orchestration.mapping_stage import mapping_targets
    from hg_pipeline.warehouse.mappings import store_mapping

    company_ids, category_paths = mapping_targets(engine, tenant_id)
    try:
        document = parse_document(text, company_ids=company_ids, category_paths=category_paths)
    except MappingError as exc:
        if len(exc.problems) == 1:
            raise InputError(f"{label}: {exc}; nothing stored") from None
        fail(f"{label}: {len(exc.problems)} problems; nothing stored")
        for problem in exc.problems:
            print(f"  {secrets.scrub(problem)}", file=sys.stderr)
        return 2
    impact = mapping_impact(engine, tenant_id, document)
    accepted = None
    if impact.too_large:
        if not force:
            raise InputError(f"{label}: this version would soft-delete {impact.describe()} (more than "
                             f"{impact.max_share:.0%} of live rows); nothing stored; re-run with --force to accept")
        accepted = impact.leaving
        forced = "forced: accepted soft-deleting " + ", ".join(f"{n} {entity}" for entity, n in accepted.items())
        comment = f"{comment}; {forced}" if comment else forced
    stored = store_mapping(engine, tenant_id, text, comment=comment, accepted_deletions=accepted)
    print(f"mapping version {stored.version} stored for tenant {tenant_id}" + (f" ({comment})" if comment else ""))
    if impact.leaving:
        print(f"its remap will soft-delete {impact.describe()}")
    return None


def _tenant_worklist(engine, tenant_id: str):
    from hg_pipeline.orchestration.mapping_stage import read_worklist

    found = read_worklist(engine, tenant_id)
    if not found.staged:
        raise InputError(f"tenant {tenant_id}: nothing synced yet: run `hg-pipeline sync {tenant_id} --initial` first")
    return found


def _decided_with(version) -> str:
    return "no mapping" if version is None else f"mapping version {version}"


def cmd_mapping_pending(args) -> None:
    """The worklist: unmapped types and categories with the records behind them (the mapping
    in force against the staged reference lists), then the records the last mapping run left
    pending, grouped by type or category."""
    from hg_pipeline.mapping.worklist import CHOICE_KINDS, KIND_WORDS

    found = _tenant_worklist(_engine(args), args.tenant)
    worklist = found.worklist
    in_force = "no mapping stored yet" if found.version is None else _decided_with(found.version)
    print(f"tenant {args.tenant}: {worklist.waiting()} ({in_force})")
    for kind in CHOICE_KINDS:
        unmapped = worklist.unmapped_of(kind)
        if unmapped:
            print(f"{KIND_WORDS[kind][0]} ({len(unmapped)} unmapped):")
            for choice in unmapped:
                print(f"  {choice.records:>6}  {'  ' if choice.is_subcategory else ''}{choice.name}")
    for entity, by_group in worklist.pending.items():
        print(f"{entity}: {sum(by_group.values())} pending")
        for group, count in sorted(by_group.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {count:>6}  {group}")
    stale = found.decided_with - {found.version}
    if worklist.pending and stale:
        print(f"note: records were decided with {' and '.join(sorted(map(_decided_with, stale)))}; "
              f"{_decided_with(found.version)} is in force now: `hg-pipeline sync {args.tenant} --full` "
              "decides them again")
    if worklist.unmapped:
        print(f"next: `hg-pipeline mapping template {args.tenant} > mapping.yaml` writes a starter mapping "
              "that names all of them")


def cmd_mapping_template(args) -> None:
    from hg_pipeline.mapping.document import parse_document
    from hg_pipeline.mapping.template import render_template
    from hg_pipeline.warehouse.mappings import current_mapping

    engine = _engine(args)
    found = _tenant_worklist(engine, args.tenant)
    stored = current_mapping(engine, args.tenant)
    current = parse_document(stored.document) if stored else None
    sys.stdout.write(render_template(found.worklist.choices, current, tenant_id=args.tenant))


def cmd_mapping_details(args) -> None:
    from hg_pipeline.entities import ALL_ENTITIES
    from hg_pipeline.warehouse.staging import staged_payload
    from hg_pipeline.warehouse.tenants import get_tenant

    if args.entity not in ALL_ENTITIES:
        raise InputError(f"entity {args.entity!r} is not one of {', '.join(ALL_ENTITIES)}")
    engine = _engine(args)
    get_tenant(engine, args.tenant)
    payload = staged_payload(engine, args.tenant, args.entity, args.psa_id)
    if payload is None:
        raise InputError(f"no {args.entity} record {args.psa_id} staged for tenant {args.tenant}")
    print(json.dumps(payload, indent=2, sort_keys=True))


# --- sync -------------------------------------------------------------------------------

def cmd_sync(args) -> int:
    kind = "initial" if args.initial else "remap" if args.remap else "nightly" if args.nightly else "full"
    from hg_pipeline.quality import worker

    if kind in worker.WORKER_KINDS:  # great-expectations loads in the quality worker meanwhile
        worker.start(args.log_level)
    from hg_pipeline.orchestration.run import NOTHING_DONE
    from hg_pipeline.warehouse import outage

    with outage.reported(args.tenant, args.database_url, NOTHING_DONE):
        _engine(args)
    return _run_and_report(args, kind, reconcile=args.reconcile)


def _run_and_report(args, kind: str, *, reconcile: bool = False) -> int:
    """Run the tenant's `kind` sync in this process, print its summary; 2 with its one line
    when it fails."""
    from hg_pipeline.orchestration.run import run_sync

    outcome = run_sync(args.database_url, args.tenant, kind, log_level=run_log_level(args), reconcile=reconcile)
    print(format_outcome(outcome))
    if not outcome.success:
        reason = outcome.reason or "the run failed"
        if not reason.startswith(f"tenant {args.tenant}:"):  # the stages' own reasons name tenant and step
            where = f" at step {outcome.failed_step}" if outcome.failed_step else ""
            reason = f"{kind} sync of {args.tenant} failed{where}: {reason}"
        fail(reason)
        return 2
    return 0


def format_outcome(outcome) -> str:
    lines = [f"{outcome.kind} sync of {outcome.tenant_id}: {'success' if outcome.success else 'FAILED'}"
             f" in {outcome.seconds:.1f}s (dagster run {outcome.run_id})"]
    from hg_pipeline.entities import ALL_ENTITIES, LOADED_ENTITIES

    header = f"  {'entity':<20}{'extracted':>10}{'quarant.':>10}{'mapped':>9}{'pending':>9}{'ignored':>9}" \
             f"{'inserted':>10}{'updated':>9}{'deleted':>9}"
    lines.append(header)
    for entity in ALL_ENTITIES:
        raw = outcome.stages.get(f"{entity}_raw", {})
        mapped = outcome.stages.get(f"{entity}_mapped", {})
        loaded = outcome.stages.get(entity, {}) if entity in LOADED_ENTITIES else {}
        if not (raw or mapped or loaded):
            continue
        cell = lambda meta, key, width: f"{meta[key]:>{width}}" if key in meta else f"{'-':>{width}}"  # noqa: E731
        lines.append(f"  {entity:<20}{cell(raw, 'received', 10)}{cell(raw, 'quarantined', 10)}"
                     f"{cell(mapped, 'mapped', 9)}{cell(mapped, 'pending', 9)}{cell(mapped, 'ignored', 9)}"
                     f"{cell(loaded, 'inserted', 10)}{cell(loaded, 'updated', 9)}{cell(loaded, 'soft_deleted', 9)}")
    if outcome.reach is not None and outcome.reach.left:
        lines.append(f"  left as loaded (the mapping change reaches none of their decisions): "
                     f"{', '.join(outcome.reach.left)}")
    if outcome.reach is not None and outcome.reach.inputs:
        lines.append(f"  mapped as an input only, not loaded (unchanged): {', '.join(outcome.reach.inputs)}")
    spend = outcome.stages.get("spend", {})
    if spend:
        raw = outcome.stages.get("spend_raw", {})
        received = raw.get("received")
        if str(raw.get("mode", "")).startswith("unchanged"):  # a nightly whose probe saw no change
            staged = "not read (unchanged in the PSA), "
        else:
            staged = "" if received is None else f"{received} lines staged, "  # a remap reads no PSA
        lines.append(f"  spend: {staged}{spend.get('lines_mapped', 0)} lines in spend "
                     f"({spend.get('rows', 0)} rows), {spend.get('lines_kept_apart', 0)} kept apart in spend_unmapped")
    worklist = outcome.stages.get("mapping_worklist")
    if worklist and "types_waiting" in worklist:
        from hg_pipeline.mapping.worklist import waiting_phrase

        waiting = waiting_phrase(worklist["types_waiting"], worklist.get("records_waiting", 0))
        if worklist["types_waiting"] or worklist.get("records_waiting"):
            waiting += (f": `hg-pipeline mapping pending {outcome.tenant_id}` lists them, "
                        f"`hg-pipeline mapping template {outcome.tenant_id}` writes a starter mapping")
        lines.append(f"tenant {outcome.tenant_id}: {waiting}")
    return "\n".join(lines)


# --- simulator, demo, bench -------------------------------------------------------------

def cmd_simulate(args) -> None:
    from hg_pipeline.connectors.credentials import parse_credential_args, resolve_credentials
    from hg_pipeline.connectors.registry import UnknownSource, source

    try:
        simulator = source(args.source).simulator_module()
    except UnknownSource as exc:
        raise InputError(str(exc)) from None
    credentials = None
    if args.credential:
        credentials = resolve_credentials(parse_credential_args(args.credential), source(args.source).required_keys)
    from hg_pipeline.simulators.datasets import scaled_name

    simulator.run_forever(args.port, scaled_name(args.dataset, args.scale), args.seed, credentials, tls=args.tls)


def cmd_demo(args) -> int:
    from hg_pipeline.demo import run_demo

    return run_demo(args.database_url, port=args.port, log_level=run_log_level(args), source_name=args.source)


def cmd_bench(args) -> None:
    from hg_pipeline.bench import run_bench

    run_bench(args.database_url if args.database_url_given else None, dataset=args.dataset, source=args.source,
              scale=args.scale)


# --- parser -----------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show Dagster's and the libraries' log lines (quiet by default)")
    common.add_argument("--database-url", default=argparse.SUPPRESS,
                        help="SQLAlchemy URL of the warehouse (default: $HG_DATABASE_URL, else ./.hg/warehouse.db)")
    parser = argparse.ArgumentParser(prog="hg-pipeline", parents=[common],
                                     description="PSA -> HighGround data pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(parent, name, handler, help_text):
        p = parent.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    db_cmd = sub.add_parser("db", help="warehouse schema").add_subparsers(dest="db_command", required=True)
    command(db_cmd, "upgrade", cmd_db_upgrade, "create or migrate the warehouse schema")

    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(dest="tenant_command", required=True)
    p = command(tenant, "add", cmd_tenant_add, "register a tenant")
    p.add_argument("tenant")
    p.add_argument("--source", required=True, choices=list(SOURCES))
    p.add_argument("--base-url")
    p.add_argument("--credential", action="append", metavar="KEY=env:VAR")
    p.add_argument("--name")
    p.add_argument("--notify-email")
    p.add_argument("--requests-per-second", type=float, metavar="R",
                   help="what the tenant's PSA instance allows (default: the source's own budget)")
    command(tenant, "list", cmd_tenant_list, "one line per tenant, no secrets")
    p = command(tenant, "token", cmd_tenant_token,
                "issue a bearer token of the import API for a `source: import` tenant (or --revoke one)")
    p.add_argument("tenant")
    p.add_argument("--revoke", metavar="TOKEN_ID", help="revoke that token instead (its id: `tenant tokens`)")
    command(tenant, "tokens", cmd_tenant_tokens, "the tenant's import API tokens, no secrets").add_argument("tenant")

    mapping = sub.add_parser("mapping", help="the tenant's mapping").add_subparsers(dest="mapping_command", required=True)
    for name, handler, text in (("show", cmd_mapping_show, "print the mapping in force"),
                                ("pending", cmd_mapping_pending, "what the last sync found unmapped")):
        command(mapping, name, handler, text).add_argument("tenant")
    command(mapping, "template", cmd_mapping_template,
            "print a starter mapping naming every type and category of the PSA").add_argument("tenant")
    p = command(mapping, "import", cmd_mapping_import, "validate and store a new mapping version")
    p.add_argument("tenant")
    p.add_argument("file")
    p.add_argument("--force", action="store_true",
                   help="store it even if its remap would soft-delete more than the allowed share of rows")
    p = command(mapping, "export", cmd_mapping_export, "print the mapping as re-importable YAML")
    p.add_argument("tenant")
    p.add_argument("--version", type=int, help="that stored version instead of the one in force")
    command(mapping, "versions", cmd_mapping_versions,
            "one line per mapping version: created, in force or not, comment").add_argument("tenant")
    p = command(mapping, "rollback", cmd_mapping_rollback,
                "store an earlier version's document again, as the new version in force")
    p.add_argument("tenant")
    p.add_argument("version", type=int)
    p.add_argument("--force", action="store_true",
                   help="store it even if its remap would soft-delete more than the allowed share of rows")
    p = command(mapping, "details", cmd_mapping_details, "the whole PSA record behind a row")
    p.add_argument("tenant")
    p.add_argument("entity")
    p.add_argument("psa_id")
    add_smart_commands(mapping, command)  # mapping suggest, mapping evaluate

    p = command(sub, "sync", cmd_sync, "run a sync of one tenant through Dagster, in this process")
    p.add_argument("tenant")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--initial", action="store_true", help="reference data for mapping only")
    kind.add_argument("--full", action="store_true",
                      help="extract everything, map what changed, check and load (default)")
    kind.add_argument("--reconcile", action="store_true",
                      help="a full sync that maps every record again, as the weekly reconcile does")
    kind.add_argument("--remap", action="store_true", help="re-apply the mapping to staged data, no PSA call")
    kind.add_argument("--nightly", action="store_true", help="incremental extract, then map and load")

    p = command(sub, "import", cmd_import, "validate CSV/JSON files of a `source: import` tenant completely, then "
                "stage them as one batch (nothing is staged from a refused set)")
    p.add_argument("tenant", nargs="?")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="companies, contacts, products, members, assets or spend files (.csv, .json, .jsonl), "
                        "named after their entity (companies.csv, spend-2026-10.jsonl, ...)")
    p.add_argument("--partial", action="store_true",
                   help="only add and update records; a record missing from the files is kept")
    p.add_argument("--sync", action="store_true", help="then run the tenant's sync in this process")
    p.add_argument("--schema", metavar="ENTITY", help="print the JSON Schema of one record of ENTITY instead")

    p = command(sub, "serve-import-api", cmd_serve_import_api,
                "serve the HTTP import API (per-tenant bearer tokens; OpenAPI at /openapi.json)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")

    p = command(sub, "simulate", cmd_simulate, "serve a PSA simulator on 127.0.0.1 until stopped")
    p.add_argument("source")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dataset", choices=["small", "large"], default="small")
    p.add_argument("--scale", type=_scale, default=1, metavar="N",
                   help="every count of the dataset times N (--dataset large --scale 10: 1.6 million records)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--credential", action="append", metavar="KEY=env:VAR")
    p.add_argument("--tls", action="store_true",
                   help="serve HTTPS with a throw-away certificate (for vendor clients that only speak https)")

    p = command(sub, "demo", cmd_demo, "simulator + tenant + default mapping + full sync into the embedded database")
    p.add_argument("--source", choices=list(demo_ready()), default="connectwise")
    p.add_argument("--port", type=int, default=8101)

    p = command(sub, "bench", cmd_bench, "full sync of a simulated MSP into PostgreSQL, with figures "
                "(the simulator in a process of its own)")
    p.add_argument("--dataset", choices=["small", "large"], default="large")
    p.add_argument("--source", default="connectwise", help="the PSA to simulate (default connectwise)")
    p.add_argument("--scale", type=_scale, default=None, metavar="N",
                   help="also a full sync of the dataset scaled N times (e.g. 10), against the dataset's own")
    return parser


def _scale(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


if __name__ == "__main__":
    run()
