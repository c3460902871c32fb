"""Registry invariants under concurrent writers: real threads, each with its own PostgreSQL connection."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from audits.ledger import ledger_verify
from audits.models import DecisionEvent
from models_registry.choices import PromotionStatus, Stage
from models_registry.models import ModelVersion
from models_registry.services import model_version_register, promotion_request_decide
from tests.audits.factories import BiasAuditFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory, PromotionRequestFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_at_once(jobs: list[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    """Start every job at the same instant on its own thread; each thread closes its own connection."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(job):
        try:
            barrier.wait()
            outcome = job()
            with lock:
                results.append(outcome)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def test_concurrent_registrations_get_distinct_consecutive_numbers(ml_engineer):
    model = MLModelFactory(owner=ml_engineer)
    writers = 8

    def register(index: int):
        return lambda: (
            model_version_register(
                model=model, actor=ml_engineer, metrics={"accuracy": 0.8 + index / 100}, reason=f"Writer {index}."
            ).number
        )

    numbers, errors = run_at_once([register(index) for index in range(writers)])

    assert errors == []
    assert sorted(numbers) == list(range(1, writers + 1))
    assert sorted(ModelVersion.objects.filter(model=model).values_list("number", flat=True)) == sorted(numbers)
    assert DecisionEvent.objects.filter(event_type="version.registered").count() == writers
    assert ledger_verify().intact


def test_concurrent_production_approvals_leave_exactly_one_production_version(
    ml_engineer, compliance_officer, other_compliance_officer
):
    current = ModelVersionFactory(model__owner=ml_engineer, number=1, stage=Stage.PRODUCTION)
    second = ModelVersionFactory(model=current.model, number=2)
    third = ModelVersionFactory(model=current.model, number=3)
    requests = [PromotionRequestFactory(version=version, requester=ml_engineer) for version in (second, third)]
    BiasAuditFactory(version=second)
    BiasAuditFactory(version=third)
    deciders = [compliance_officer, other_compliance_officer]

    def approve(request, decider):
        return lambda: promotion_request_decide(promotion_request=request, actor=decider, approve=True, reason="Go.")

    _, errors = run_at_once([approve(request, decider) for request, decider in zip(requests, deciders, strict=True)])

    assert errors == []
    stages = dict(ModelVersion.objects.filter(model=current.model).values_list("number", "stage"))
    assert list(stages.values()).count(Stage.PRODUCTION) == 1
    assert stages[1] == Stage.ARCHIVED
    assert sorted(stages.values()) == sorted([Stage.ARCHIVED, Stage.ARCHIVED, Stage.PRODUCTION])
    assert ledger_verify().intact


def test_a_request_decided_by_two_officers_at_once_is_decided_once(
    ml_engineer, compliance_officer, other_compliance_officer
):
    request = PromotionRequestFactory(requester=ml_engineer, target_stage=Stage.STAGING)

    def decide(decider, approve):
        return lambda: promotion_request_decide(
            promotion_request=request, actor=decider, approve=approve, reason=f"{decider.username} decided."
        )

    decided, errors = run_at_once([decide(compliance_officer, True), decide(other_compliance_officer, False)])

    assert len(decided) == 1
    assert len(errors) == 1 and isinstance(errors[0], ValidationError)
    request.refresh_from_db()
    assert request.status == decided[0].status
    assert request.status in (PromotionStatus.APPROVED, PromotionStatus.REJECTED)
    assert DecisionEvent.objects.filter(event_type="promotion.decided").count() == 1
