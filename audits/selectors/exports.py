"""Reads for exports: who sees which export, and a model's decisions in a period, in keyset batches."""

from collections.abc import Iterator
from datetime import datetime

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from audits.models import Export
from hitl_platform.types import RequestUser
from reviews.models import Decision


def exports_visible_to(user: RequestUser) -> QuerySet[Export]:
    """Exports a user may see: their own; every export for a superuser."""
    exports = Export.objects.select_related("requested_by", "model")
    if user.is_superuser:
        return exports
    if isinstance(user, AnonymousUser):
        return exports.none()
    return exports.filter(requested_by=user)


def decisions_for_export(*, model_id: int, start: datetime, end: datetime) -> QuerySet[Decision]:
    """A model's decisions made in [start, end), with what an export row needs and no personal data."""
    return (
        Decision.objects.filter(model_id=model_id, decided_at__gte=start, decided_at__lt=end)
        .select_related("model", "prediction__version", "decided_by")
        .only(
            "id",
            "final_label",
            "source",
            "agreement",
            "decided_at",
            "decided_by__username",
            "model__name",
            "prediction__id",
            "prediction__external_id",
            "prediction__predicted_label",
            "prediction__confidence",
            "prediction__route",
            "prediction__route_reasons",
            "prediction__is_qa_sample",
            "prediction__outcome_label",
            "prediction__input_sha256",
            "prediction__created_at",
            "prediction__version__number",
        )
    )


def decisions_batches(queryset: QuerySet[Decision], *, batch_size: int = 2000) -> Iterator[list[Decision]]:
    """Keyset pages in id order: constant memory and no OFFSET scan however many decisions there are."""
    last_id = 0
    while True:
        batch = list(queryset.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        yield batch
        last_id = batch[-1].pk
