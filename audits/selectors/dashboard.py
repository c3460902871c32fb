"""The dashboard's reads: the daily rollup and the live queue for the page, and the aggregates that rebuild the rollup.

Each runs a fixed number of queries whatever the number of models, cases or days: figures are aggregated in the
database (GROUP BY model and day), never computed with a query per model or per row.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from audits.dashboard_math import AgreementStats, histogram_median_minutes, histograms_merge
from audits.models import DashboardDay
from models_registry.models import MLModel
from reviews.choices import QUEUED_TASK_STATUSES, DecisionSource, TaskStatus
from reviews.models import Decision, Prediction, Review, ReviewTask

HUMAN_SOURCES = (DecisionSource.CONSENSUS, DecisionSource.ADJUDICATION)
DASHBOARD_PERIODS = (7, 30, 90)
DEFAULT_DASHBOARD_PERIOD = 30


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class ModelFigures:
    """One model's governance figures over a period (queue depth is the queue now)."""

    model_id: int | None
    name: str
    risk_tier: str = ""
    legal_hold: bool = False
    stop_switch_on: bool | None = None
    volume: int = 0
    auto_decided: int = 0
    human_decided: int = 0
    overridden: int = 0
    qa_total: int = 0
    qa_correct: int = 0
    outcome_total: int = 0
    outcome_correct: int = 0
    sla_breaches: int = 0
    queue_depth: int = 0
    decision_minutes: dict[str, int] = field(default_factory=dict)
    agreement: AgreementStats = field(default_factory=AgreementStats)

    def add_day(self, day: "DashboardDay") -> None:
        for name in DAY_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(day, name))
        self.decision_minutes = histograms_merge([self.decision_minutes, day.decision_minutes])
        self.agreement.merge(
            AgreementStats(
                cases=day.agreement_cases, disagreement=day.agreement_disagreement, labels=Counter(day.agreement_labels)
            )
        )

    def add(self, other: "ModelFigures") -> None:
        for name in (*DAY_COUNTS, "queue_depth"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.decision_minutes = histograms_merge([self.decision_minutes, other.decision_minutes])
        self.agreement.merge(other.agreement)

    @property
    def decided(self) -> int:
        return self.auto_decided + self.human_decided

    @property
    def automation_rate(self) -> float | None:
        return _ratio(self.auto_decided, self.decided)

    @property
    def override_rate(self) -> float | None:
        """Share of human-decided cases whose final label differs from the model's."""
        return _ratio(self.overridden, self.human_decided)

    @property
    def qa_accuracy(self) -> float | None:
        """The model's label against the human final label, on cases sampled for QA."""
        return _ratio(self.qa_correct, self.qa_total)

    @property
    def outcome_accuracy(self) -> float | None:
        """The model's label against the real-world outcome, where one was reported."""
        return _ratio(self.outcome_correct, self.outcome_total)

    @property
    def median_hours_to_decision(self) -> float | None:
        minutes = histogram_median_minutes(self.decision_minutes)
        return None if minutes is None else minutes / 60

    @property
    def agreement_alpha(self) -> float | None:
        return self.agreement.alpha()

    @property
    def agreement_cases(self) -> int:
        return self.agreement.cases


DAY_COUNTS = (
    "volume",
    "auto_decided",
    "human_decided",
    "overridden",
    "qa_total",
    "qa_correct",
    "outcome_total",
    "outcome_correct",
    "sla_breaches",
)


@dataclass(frozen=True)
class DayFigures:
    day: date
    volume: int
    auto_decided: int
    human_decided: int


@dataclass
class Dashboard:
    period_days: int
    first_day: date
    models: list[ModelFigures]
    days: list[DayFigures]
    totals: ModelFigures
    refreshed_at: datetime | None


def dashboard_last_refresh() -> datetime | None:
    return DashboardDay.objects.aggregate(latest=Max("refreshed_at"))["latest"]


def dashboard_figures(*, period_days: int, today: date | None = None) -> Dashboard:
    """Every model's figures for the cases that arrived in the last ``period_days`` days (today included).

    Reads the daily rollup (``DashboardDay``) and the live queue: two queries whatever the number of models,
    cases or days.
    """
    today = today or timezone.localdate()
    first_day = today - timedelta(days=period_days - 1)
    queued = ReviewTask.objects.filter(model=OuterRef("pk"), status__in=QUEUED_TASK_STATUSES).order_by()
    models = (
        MLModel.objects.select_related("routing_policy")
        .only("id", "name", "risk_tier", "legal_hold", "routing_policy__id", "routing_policy__stop_switch_on")
        .annotate(queue_depth=Coalesce(Subquery(queued.values("model").annotate(n=Count("id")).values("n")), 0))
        .order_by("name")
    )
    figures: dict[int, ModelFigures] = {}
    for model in models:
        policy = getattr(model, "routing_policy", None)
        figures[model.pk] = ModelFigures(
            model_id=model.pk,
            name=model.name,
            risk_tier=model.get_risk_tier_display(),
            legal_hold=model.legal_hold,
            stop_switch_on=policy.stop_switch_on if policy is not None else None,
            queue_depth=model.queue_depth,
        )
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    refreshed_at = None
    for day in DashboardDay.objects.filter(day__gte=first_day, day__lte=today).order_by():
        if day.model_id in figures:
            figures[day.model_id].add_day(day)
        totals_of_day = per_day[day.day]
        totals_of_day[0] += day.volume
        totals_of_day[1] += day.auto_decided
        totals_of_day[2] += day.human_decided
        refreshed_at = max(refreshed_at, day.refreshed_at) if refreshed_at else day.refreshed_at
    totals = ModelFigures(model_id=None, name="All models")
    for model_figures in figures.values():
        totals.add(model_figures)
    trend = []
    for offset in range(period_days):
        on = first_day + timedelta(days=offset)
        volume, auto_decided, human_decided = per_day.get(on, (0, 0, 0))
        trend.append(DayFigures(day=on, volume=volume, auto_decided=auto_decided, human_decided=human_decided))
    return Dashboard(
        period_days=period_days,
        first_day=first_day,
        models=list(figures.values()),
        days=trend,
        totals=totals,
        refreshed_at=refreshed_at,
    )


# Reads of the rollup's refresh: each runs once per refresh (a background task), over the days being rebuilt.


def arrivals_by_model_and_day(*, start: datetime, end: datetime) -> QuerySet:
    """Per model and day of arrival, the case counts the rates are made of."""
    human = Q(decision__source__in=HUMAN_SOURCES)
    differs = ~Q(decision__final_label=F("predicted_label"))
    qa = Q(is_qa_sample=True) & human
    outcome = ~Q(outcome_label="")
    return (
        Prediction.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at"))
        .values("model_id", "day")
        .annotate(
            volume=Count("id"),
            auto_decided=Count("id", filter=Q(decision__source=DecisionSource.AUTO)),
            human_decided=Count("id", filter=human),
            overridden=Count("id", filter=human & differs),
            qa_total=Count("id", filter=qa),
            qa_correct=Count("id", filter=qa & Q(decision__final_label=F("predicted_label"))),
            outcome_total=Count("id", filter=outcome),
            outcome_correct=Count("id", filter=outcome & Q(outcome_label=F("predicted_label"))),
        )
        .order_by()
    )


def human_decision_times(*, start: datetime, end: datetime) -> list[tuple[int, datetime, datetime]]:
    """(model id, arrival, decision time) of every human decision on cases that arrived in [start, end)."""
    # A list, not a server-side cursor: a cursor is planned for its first rows, a poor plan for a full read.
    return list(
        Decision.objects.filter(
            prediction__created_at__gte=start, prediction__created_at__lt=end, source__in=HUMAN_SOURCES
        )
        .values_list("model_id", "prediction__created_at", "decided_at")
        .order_by()
    )


def review_labels_by_case(*, start: datetime, end: datetime) -> list[tuple[int, int, datetime, str, int]]:
    """(model id, task id, case arrival, label, how many reviewers gave it), ordered by task.

    Each reviewer's current review counts (a corrected review is replaced by its correction); adjudications
    do not (they resolve a disagreement rather than rate the case independently).
    """
    corrected = Review.objects.filter(corrects=OuterRef("pk"))
    return list(
        Review.objects.filter(
            task__prediction__created_at__gte=start, task__prediction__created_at__lt=end, is_adjudication=False
        )
        .filter(~Exists(corrected))
        .values_list("task__model_id", "task_id", "task__prediction__created_at", "label")
        .annotate(n=Count("id"))
        .order_by("task_id")
    )


def sla_breaches_by_model_and_day(*, start: datetime, end: datetime, now: datetime) -> QuerySet:
    """Per model and day of arrival, review tasks breached as of now: flagged, expired, decided late, or overdue."""
    breached = (
        Q(sla_breached=True)
        | Q(status=TaskStatus.EXPIRED)
        | Q(decided_at__gt=F("due_at"))
        | Q(status__in=QUEUED_TASK_STATUSES, due_at__lt=now)
    )
    return (
        ReviewTask.objects.filter(prediction__created_at__gte=start, prediction__created_at__lt=end)
        .filter(breached)
        .annotate(day=TruncDate("prediction__created_at"))
        .values("model_id", "day")
        .annotate(breaches=Count("id"))
        .order_by()
    )
