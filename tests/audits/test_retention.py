"""Retention: never below 183 days, never on a model under legal hold, always logged in history and ledger."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from audits.checks import check_retention_days
from audits.ledger import ledger_verify
from audits.models import DecisionEvent, Export
from audits.services.retention import retention_purge
from audits.tasks import retention_purge_task
from reviews.choices import DecisionSource
from reviews.models import Prediction
from reviews.services.decisions import decision_record
from tests.reviews.factories import PredictionFactory


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.RETENTION_DAYS = 365


def _decided_case(*, age_days: int, **kwargs) -> Prediction:
    prediction = PredictionFactory(created_at=timezone.now() - timedelta(days=age_days), **kwargs)
    decision_record(
        prediction=prediction,
        final_label="approve",
        source=DecisionSource.CONSENSUS,
        agreement=1.0,
        decided_by=None,
        reason="consensus",
    )
    return prediction


@pytest.mark.parametrize("days", [182, 30, 0, -1])
def test_a_retention_period_below_183_days_fails_the_system_check(settings, days):
    settings.RETENTION_DAYS = days

    errors = check_retention_days(None)

    assert [error.id for error in errors] == ["audits.E002"]
    with pytest.raises(SystemCheckError, match="RETENTION_DAYS is"):
        call_command("check")


@pytest.mark.parametrize("days", [183, 365, 3650])
def test_a_retention_period_of_six_months_or_more_passes(settings, days):
    settings.RETENTION_DAYS = days
    assert check_retention_days(None) == []


def test_a_retention_period_that_is_not_a_number_fails_the_check(settings):
    settings.RETENTION_DAYS = "365"
    assert [error.id for error in check_retention_days(None)] == ["audits.E001"]


def test_the_purge_refuses_to_run_below_the_floor_even_without_the_check(settings, db):
    settings.RETENTION_DAYS = 90
    old = _decided_case(age_days=120)

    with pytest.raises(ImproperlyConfigured):
        retention_purge()

    old.refresh_from_db()
    assert old.features


def test_the_purge_erases_personal_data_of_old_cases_only_and_logs_it(db):
    old = _decided_case(age_days=400)
    recent = _decided_case(age_days=30)
    undecided_old = PredictionFactory(created_at=timezone.now() - timedelta(days=400))

    result = retention_purge()

    old.refresh_from_db()
    recent.refresh_from_db()
    undecided_old.refresh_from_db()
    assert (old.features, old.sensitive_attributes, old.scores, old.explanation) == ({}, {}, {}, None)
    assert old.input_sha256 and old.predicted_label == "approve"
    assert recent.features and recent.sensitive_attributes
    assert undecided_old.features
    assert result.predictions_purged == 1
    history = old.history.order_by("-history_date").first()
    assert history.history_user is None
    assert history.history_change_reason.startswith("Retention purge: personal data of cases older than 365 days")
    event = DecisionEvent.objects.get(event_type="retention.purged")
    payload = json.loads(event.payload)
    assert (payload["count"], payload["first_prediction_id"], payload["retention_days"]) == (1, old.pk, 365)
    assert ledger_verify().intact


def test_a_legal_hold_blocks_the_purge_of_its_models_cases(db):
    held = _decided_case(age_days=400)
    held.model.legal_hold = True
    held.model.save(update_fields=["legal_hold"])
    free = _decided_case(age_days=400)

    result = retention_purge()

    held.refresh_from_db()
    free.refresh_from_db()
    assert held.features and held.sensitive_attributes
    assert free.features == {}
    assert result.models_on_legal_hold == [held.model.name]
    assert json.loads(DecisionEvent.objects.get(event_type="retention.purged").payload)["models_on_legal_hold"] == [
        held.model.name
    ]


def test_a_second_purge_finds_nothing_left_to_erase(db):
    _decided_case(age_days=400)
    retention_purge()

    assert retention_purge_task.delay().get() == {"predictions_purged": 0, "exports_deleted": 0}
    assert DecisionEvent.objects.filter(event_type="retention.purged").count() == 1


def test_the_purge_deletes_old_export_files_unless_their_model_is_on_legal_hold(db, compliance_officer):
    free_case = _decided_case(age_days=400)
    held_case = _decided_case(age_days=400)
    held_case.model.legal_hold = True
    held_case.model.save(update_fields=["legal_hold"])
    exports = []
    for prediction in (free_case, held_case):
        export = Export.objects.create(
            kind="case",
            format="json",
            prediction=prediction,
            status="done",
            requested_by=compliance_officer,
            created_at=timezone.now() - timedelta(days=400),
        )
        export.file.save("case.json", ContentFile(b"{}"))
        exports.append(export)

    result = retention_purge()

    assert result.exports_deleted == 1
    free_export, held_export = (Export.objects.get(pk=e.pk) for e in exports)
    assert not free_export.file
    assert held_export.file
    assert free_export.history.order_by("-history_date").first().history_change_reason.startswith("Retention purge")
