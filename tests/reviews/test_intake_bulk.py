"""The bulk insert of the intake path (COPY on PostgreSQL): the same rows and history rows as bulk_create."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from hitl_platform.history import bulk_create_with_history_fast
from models_registry.choices import Stage
from reviews.choices import Route
from reviews.models import Prediction
from tests.models_registry.factories import ModelVersionFactory


def new_predictions(version, user, count: int, prefix: str = "bulk") -> list[Prediction]:
    created_at = timezone.now() - timedelta(minutes=5)
    return [
        Prediction(
            model_id=version.model_id,
            version_id=version.pk,
            external_id=f"{prefix}-{n}",
            payload_sha256="a" * 64,
            input_sha256="b" * 64,
            features={"credit_amount": 1200.5 + n, "note": 'quotes " and \\ backslashes\ttabs\nnewlines', "n": None},
            sensitive_attributes={"sex": "female"},
            predicted_label="approve",
            confidence=0.5 + n / 100,
            scores={"approve": 0.5, "deny": 0.5},
            explanation=None if n % 2 else {"credit_amount": -0.25},
            route=Route.REVIEW,
            route_reasons=[f"reason {n}, with a comma", "naïve ünïcode"],
            priority=1000 + n,
            submitted_by_id=user.pk,
            created_at=created_at,
        )
        for n in range(count)
    ]


def test_it_stores_every_value_and_sets_the_primary_keys(db, ml_engineer):
    version = ModelVersionFactory(model__owner=ml_engineer, stage=Stage.PRODUCTION)
    objs = new_predictions(version, ml_engineer, 5)

    saved = bulk_create_with_history_fast(
        objs, Prediction, default_user=ml_engineer, default_change_reason="Bulk test", default_date=timezone.now()
    )

    assert [obj.pk for obj in saved] == list(
        Prediction.objects.filter(pk__in=[obj.pk for obj in saved]).order_by("external_id").values_list("pk", flat=True)
    )
    for original in saved:
        stored = Prediction.objects.get(pk=original.pk)
        for field in Prediction._meta.concrete_fields:
            assert getattr(stored, field.attname) == getattr(original, field.attname), field.name


def test_it_writes_one_history_row_per_object_with_user_reason_and_date(db, ml_engineer):
    version = ModelVersionFactory(model__owner=ml_engineer, stage=Stage.PRODUCTION)
    when = timezone.now() - timedelta(seconds=30)

    saved = bulk_create_with_history_fast(
        new_predictions(version, ml_engineer, 3),
        Prediction,
        default_user=ml_engineer,
        default_change_reason="Received and routed",
        default_date=when,
    )

    for obj in saved:
        history = obj.history.get()
        assert (history.history_type, history.history_user, history.history_change_reason, history.history_date) == (
            "+",
            ml_engineer,
            "Received and routed",
            when,
        )
        assert (history.route_reasons, history.priority, history.external_id) == (
            obj.route_reasons,
            obj.priority,
            obj.external_id,
        )


def test_a_duplicate_is_djangos_integrity_error_and_stores_nothing(db, ml_engineer):
    version = ModelVersionFactory(model__owner=ml_engineer, stage=Stage.PRODUCTION)
    bulk_create_with_history_fast(
        new_predictions(version, ml_engineer, 1),
        Prediction,
        default_user=None,
        default_change_reason="",
        default_date=timezone.now(),
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        bulk_create_with_history_fast(
            new_predictions(version, ml_engineer, 3),
            Prediction,
            default_user=None,
            default_change_reason="",
            default_date=timezone.now(),
        )

    assert Prediction.objects.count() == 1
    assert Prediction.history.count() == 1
