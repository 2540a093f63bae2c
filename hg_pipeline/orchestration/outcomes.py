"""What a finished run did, read from its Dagster events: per-asset metadata and, when it
failed, the failing step with a one-line reason. Used by the CLI runner and the
notification sensors alike."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from dagster import DagsterEvent, DagsterEventType


@dataclass
class RunStory:
    stages: dict[str, dict] = field(default_factory=dict)  # asset name -> materialization metadata
    failed_step: str | None = None
    reason: str | None = None

    def numeric_stages(self) -> dict[str, dict[str, int | float]]:
        """The counts of every stage (numbers only: no previews, no JSON), as sync_runs keeps them."""
        return {name: {k: v for k, v in meta.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                for name, meta in self.stages.items()}


def applied_mapping_version(kind: str, stages: dict[str, dict]) -> int | None:
    """The mapping version a successful full, remap or nightly run applied (its map stages' metadata)."""
    if kind not in ("full", "remap", "nightly"):
        return None
    versions = [int(meta["mapping_version"]) for name, meta in stages.items()
                if name.endswith("_mapped") and isinstance(meta.get("mapping_version"), (int, float))]
    return max(versions) if versions else None


def read_events(events: Iterable[DagsterEvent]) -> RunStory:
    story = RunStory()
    failed_checks: list[str] = []
    for event in events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            story.stages[materialization.asset_key.to_user_string()] = {
                key: value.value for key, value in materialization.metadata.items()}
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                summary = evaluation.metadata.get("summary")
                failed_checks.append(f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()}"
                                     f" failed: {summary.value if summary else evaluation.description}")
        elif event.event_type == DagsterEventType.STEP_FAILURE and story.failed_step is None:
            data = event.event_specific_data
            story.failed_step = event.step_key
            if data.user_failure_data and data.user_failure_data.description:
                story.reason = data.user_failure_data.description
            else:
                story.reason = error_reason(data.error)
        elif event.event_type in _RUN_LEVEL_FAILURES and story.failed_step is None and story.reason is None:
            # No step failed: the run could not start its steps (e.g. the tenant lock is busy).
            story.reason = error_reason(getattr(event.event_specific_data, "error", None)) or event.message
    if failed_checks:
        story.reason = "; ".join(failed_checks)
    return story


_RUN_LEVEL_FAILURES = {DagsterEventType.RESOURCE_INIT_FAILURE, DagsterEventType.RUN_FAILURE}
# "dagster._core.errors.DagsterExecutionStepExecutionError: ..." or "requests.exceptions.X: ..."
_CLASS_PREFIX = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception|Failure|Interrupt|Exit)\b:\s*")


def error_reason(error) -> str | None:
    """The one line a user should read from a serialized Dagster error: the innermost cause's
    message, without any exception class name or stack trace."""
    if error is None:
        return None
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = [line.strip() for line in (error.message or "").splitlines() if line.strip()]
    if not lines:
        return "unexpected error"
    match = _CLASS_PREFIX.match(lines[0])
    if not match:
        return lines[0]
    rest = lines[0][match.end():] or "unexpected error"
    class_path = match.group(0).strip().rstrip(":")
    # Dagster's own wrapper classes say nothing to a user; another library's short name does.
    return rest if "dagster" in class_path else f"{class_path.rsplit('.', 1)[-1]}: {rest}"
