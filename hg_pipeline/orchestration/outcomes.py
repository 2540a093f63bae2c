"""What a finished run did, read from its Dagster events: per-asset metadata and, when it
failed, the failing step with a one-line reason. Used by the CLI runner and the
notification sensors alike."""

from __future__ import annotations

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
            elif data.error:
                story.reason = (data.error.message.strip().splitlines() or ["unknown error"])[0]
    if failed_checks:
        story.reason = "; ".join(failed_checks)
    return story
