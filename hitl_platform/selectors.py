"""Reads of the ML engineers' pages: their models at a glance, and their API tokens."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone
from knox.models import AuthToken

from hitl_platform.roles import Role
from hitl_platform.types import RequestUser
from models_registry.selectors import ml_model_list, ml_models_readable_by
from reviews.choices import QUEUED_TASK_STATUSES, Route
from reviews.models import Prediction, ReviewTask

VOLUME_PERIOD_DAYS = 30


def user_is_ml_engineer(user: RequestUser) -> bool:
    """Whether the engineers' pages are for ``user``: the ML engineer role, or an administrator."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=Role.ML_ENGINEER).exists()


@dataclass(frozen=True)
class EngineerModelRow:
    """One model on the engineer's home page: its production version and its last 30 days of cases."""

    name: str
    risk_tier: str
    production_version: int | None
    latest_version: int | None
    volume: int
    automated: int
    open_queue: int

    @property
    def automation_rate(self) -> float | None:
        """The share of the period's cases decided without a person; None without cases."""
        return self.automated / self.volume if self.volume else None


def _count_per_model(queryset) -> Coalesce:
    counted = queryset.filter(model=OuterRef("pk")).order_by().values("model").annotate(n=Count("id")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def engineer_models(*, user: RequestUser, now: datetime | None = None) -> list[EngineerModelRow]:
    """The models ``user`` may read, with their figures: one query, whatever the number of models or cases.

    Volume counts the cases (gold copies left out) that arrived in the last 30 days; the automation rate is the
    share of them routed to an automatic decision; the queue is every task still waiting for a reviewer now.
    """
    since = (now or timezone.now()) - timedelta(days=VOLUME_PERIOD_DAYS)
    recent_cases = Prediction.objects.filter(created_at__gte=since, is_gold=False)
    models = ml_models_readable_by(user, ml_model_list()).annotate(
        volume=_count_per_model(recent_cases),
        automated=_count_per_model(recent_cases.filter(route=Route.AUTO)),
        open_queue=_count_per_model(ReviewTask.objects.filter(status__in=QUEUED_TASK_STATUSES)),
    )
    return [
        EngineerModelRow(
            name=model.name,
            risk_tier=model.get_risk_tier_display(),
            production_version=model.production_version,
            latest_version=model.latest_version,
            volume=model.volume,
            automated=model.automated,
            open_queue=model.open_queue,
        )
        for model in models.order_by("name")
    ]


@dataclass(frozen=True)
class TokenRow:
    """One live token on the tokens page. ``name`` is empty for a token made outside the page and the API."""

    digest: str
    name: str
    created: datetime
    expiry: datetime | None
    last_used_at: datetime | None


def api_tokens_of(*, user: User, now: datetime | None = None) -> list[TokenRow]:
    """``user``'s tokens that still open the API, newest first: one query."""
    now = now or timezone.now()
    tokens = (
        AuthToken.objects.filter(user=user)
        .filter(Q(expiry__isnull=True) | Q(expiry__gt=now))
        .select_related("details")
        .order_by("-created")
    )
    rows = []
    for token in tokens:
        details = getattr(token, "details", None)
        rows.append(
            TokenRow(
                digest=token.digest,
                name=details.name if details else "",
                created=token.created,
                expiry=token.expiry,
                last_used_at=details.last_used_at if details else None,
            )
        )
    return rows


def api_token_of(*, user: User, digest: str, now: datetime | None = None) -> AuthToken:
    """``user``'s live token of this digest; anybody else's, or none, is the same 404."""
    now = now or timezone.now()
    token = (
        AuthToken.objects.filter(user=user, digest=digest)
        .filter(Q(expiry__isnull=True) | Q(expiry__gt=now))
        .select_related("details", "user")
        .first()
    )
    if token is None:
        raise Http404("No such token of yours.")
    return token


@dataclass(frozen=True)
class TokenLifetime:
    hours: int
    label: str


STANDARD_LIFETIME_DAYS = (1, 7, 30, 90)


def api_token_max_lifetime() -> timedelta:
    """The longest a token may live (API_TOKEN_TTL_HOURS), read when asked so tests may change it."""
    lifetime = settings.REST_KNOX["TOKEN_TTL"]
    assert isinstance(lifetime, timedelta), "knox's TOKEN_TTL is a timedelta"
    return lifetime


def api_token_lifetimes() -> list[TokenLifetime]:
    """The lifetimes a new token may be given: the standard ones up to API_TOKEN_TTL_HOURS, and that maximum."""
    max_hours = int(api_token_max_lifetime().total_seconds() // 3600)
    lifetimes = [
        TokenLifetime(hours=days * 24, label=f"{days} day{'s' if days > 1 else ''}")
        for days in STANDARD_LIFETIME_DAYS
        if days * 24 <= max_hours
    ]
    if max_hours >= 1 and all(lifetime.hours != max_hours for lifetime in lifetimes):
        days, hours = divmod(max_hours, 24)
        words = f"{days} days" if not hours else f"{max_hours} hours"
        lifetimes.append(TokenLifetime(hours=max_hours, label=f"{words} (the longest allowed)"))
    return lifetimes
