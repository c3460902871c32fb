"""Fixtures of the audits tests: a fully reviewed case, a way to tamper with the ledger, an anchor file per test."""

import re
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from reviews.models import Webhook
from tests.conftest import TEST_OUTPUT
from tests.reviews.factories import PredictionFactory, adjudicated_split_case


@pytest.fixture(autouse=True)
def anchor_file(request, settings) -> Path:
    """Each test's own ledger anchor sink, empty at the start, under test-output/ (kept to read after a failure)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])[:150]
    path = TEST_OUTPUT / "ledger-anchors" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    settings.LEDGER_ANCHOR_URL = f"file://{path}"
    return path


@contextmanager
def ledger_tampering():
    """Let a test rewrite ledger rows as an attacker with table access would.

    On PostgreSQL the append-only trigger refuses that, so it is disabled for the test's transaction (the
    ALTER TABLE is rolled back with it); SQLite has no trigger.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audits_decisionevent DISABLE TRIGGER audits_decisionevent_append_only")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audits_decisionevent ENABLE TRIGGER audits_decisionevent_append_only")


@pytest.fixture
def reviewed_case(db, reviewer_a, reviewer_b, adjudicator):
    """A case two reviewers disagreed on, escalated and adjudicated, with a subscribed webhook."""
    prediction = PredictionFactory(
        features={"credit_amount": 9800.0, "duration": 48, "age": 29},
        route_reasons=["confidence 0.55 is below the 0.80 auto-decide threshold", "credit_amount > 8000: review"],
        confidence=0.55,
    )
    Webhook.objects.create(
        owner=prediction.model.owner, url="https://bank.example.org/hook", events=["decision.final"], secret="s" * 32
    )
    task, decision = adjudicated_split_case(
        prediction,
        reviewers=(reviewer_a, reviewer_b),
        adjudicator=adjudicator,
        rationales=("Stable income for six years.", "Loan is five times the monthly income."),
    )
    prediction.refresh_from_db()
    return prediction, task, decision


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)
