"""Reads behind "My cases": the cases a reviewer reviewed, where each one stands, and (once decided) its outcome.

A reviewer sees their own answer on every case and the final label only once the case is decided: never
another reviewer's answer, and nothing that would reveal one before the decision (no tally, no agreement, no
escalation reason). Gold cases are listed like any other, named after their source (`reviewer_case_names`),
and stay "awaiting other reviews": telling them apart would tell the reviewer which cases measure them.
Pages are cursor-based on the assignment id (newest first), so a page costs one index range scan however
many cases a reviewer has.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef

from reviews.choices import CLAIMABLE_TASK_STATUSES, AssignmentStatus, TaskStatus
from reviews.models import Assignment, Decision, Review
from reviews.selectors.queue import CaseNaming, reviewer_case_names
from reviews.services.appeals import APPEAL_HISTORY_REASON

MY_CASES_PAGE_SIZE = 25


class CaseStanding:
    """Where a reviewed case stands, in the words the page shows."""

    AWAITING_REVIEWS = "awaiting other reviews"
    ESCALATED = "escalated"
    IN_ADJUDICATION = "in adjudication"
    DECIDED = "decided"
    APPEALED = "appealed"
    WITHDRAWN = "withdrawn from review"


@dataclass(frozen=True)
class MyCase:
    """One case the reviewer reviewed; `final_label` is empty until the case is decided."""

    assignment_id: int
    case_name: str
    model_name: str
    own_label: str
    reviewed_at: datetime | None
    standing: str
    final_label: str


@dataclass(frozen=True)
class MyCasesPage:
    """One page of the reviewer's cases, newest first; `next_cursor` is None on the last page."""

    cases: list[MyCase]
    next_cursor: int | None
    is_first: bool


def _standing(*, task_status: str, needs_adjudication: bool, decided: bool, appealed: bool) -> str:
    if decided:
        return CaseStanding.APPEALED if appealed else CaseStanding.DECIDED
    if task_status in CLAIMABLE_TASK_STATUSES:
        return CaseStanding.AWAITING_REVIEWS
    if task_status == TaskStatus.ESCALATED:
        # Critical-tier cases always get an adjudicator's call; the others went there because the reviews split.
        return CaseStanding.IN_ADJUDICATION if needs_adjudication else CaseStanding.ESCALATED
    return CaseStanding.WITHDRAWN


def reviewer_cases(*, reviewer, before: int | None = None, page_size: int = MY_CASES_PAGE_SIZE) -> MyCasesPage:
    """The reviewer's submitted review assignments, newest first, from just below the cursor `before`."""
    appealed = Decision.history.model.objects.filter(
        id=OuterRef("task__prediction__decision__id"), history_change_reason__startswith=APPEAL_HISTORY_REASON
    )
    assignments = Assignment.objects.filter(
        reviewer=reviewer, status=AssignmentStatus.SUBMITTED, is_adjudication=False
    ).order_by("-id")
    if before is not None:
        assignments = assignments.filter(id__lt=before)
    rows = list(
        assignments.annotate(appealed=Exists(appealed)).values(
            "id",
            "finished_at",
            "appealed",
            "task__status",
            "task__needs_adjudication",
            "task__model__name",
            "task__model_id",
            "task__prediction_id",
            "task__prediction__external_id",
            "task__prediction__is_gold",
            "task__prediction__payload_sha256",
            "task__prediction__decision__final_label",
        )[: page_size + 1]
    )
    page, more = rows[:page_size], len(rows) > page_size
    own_labels = dict(
        Review.objects.filter(assignment_id__in=[row["id"] for row in page], corrections__isnull=True)
        .order_by("id")
        .values_list("assignment_id", "label")
    )
    names = reviewer_case_names(
        [
            CaseNaming(
                prediction_id=row["task__prediction_id"],
                external_id=row["task__prediction__external_id"],
                is_gold=row["task__prediction__is_gold"],
                model_id=row["task__model_id"],
                payload_sha256=row["task__prediction__payload_sha256"],
            )
            for row in page
        ]
    )
    cases = []
    for row in page:
        final_label = row["task__prediction__decision__final_label"]
        decided = row["task__status"] == TaskStatus.DECIDED and final_label is not None
        cases.append(
            MyCase(
                assignment_id=row["id"],
                case_name=names[row["task__prediction_id"]],
                model_name=row["task__model__name"],
                own_label=own_labels.get(row["id"], ""),
                reviewed_at=row["finished_at"],
                standing=_standing(
                    task_status=row["task__status"],
                    needs_adjudication=row["task__needs_adjudication"],
                    decided=decided,
                    appealed=row["appealed"],
                ),
                final_label=final_label if decided else "",
            )
        )
    return MyCasesPage(cases=cases, next_cursor=page[-1]["id"] if more else None, is_first=before is None)
