"""The decisions feed pages by id, so ids must follow commit order: a decision committed later never gets a lower
id than one a consumer has already read past (PostgreSQL, two concurrent transactions)."""

import threading

import pytest
from django.db import connection

from reviews.choices import DecisionSource
from reviews.models import Decision
from reviews.services import decisions as decisions_service
from reviews.services.decisions import decision_record
from tests.conftest import on_postgres
from tests.reviews.factories import PredictionFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not on_postgres(), reason="needs PostgreSQL (set DATABASE_URL)"),
]


def test_a_decision_waiting_to_commit_holds_back_the_next_one_so_the_feed_never_skips(db, monkeypatch):
    first_case, second_case = PredictionFactory(), PredictionFactory()
    first_inserted, release_first, second_done = threading.Event(), threading.Event(), threading.Event()
    committed_ids: list[int] = []
    append = decisions_service.ledger_append_many

    def append_after_a_pause(entries, **kwargs):
        # The first transaction has inserted its decision and still has work to do before it commits (as intake
        # does between its decisions and its ledger events).
        if threading.current_thread().name == "first":
            first_inserted.set()
            release_first.wait(timeout=10)
        return append(entries, **kwargs)

    monkeypatch.setattr(decisions_service, "ledger_append_many", append_after_a_pause)

    def decide(case, label: str, done: threading.Event | None) -> None:
        try:
            if done is not None:
                first_inserted.wait(timeout=10)
            decision = decision_record(
                prediction=case,
                final_label=label,
                source=DecisionSource.CONSENSUS,
                agreement=1.0,
                decided_by=None,
                reason=label,
            )
            committed_ids.append(decision.pk)
            if done is not None:
                done.set()
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(first_case, "approve", None), name="first"),
        threading.Thread(target=decide, args=(second_case, "deny", second_done), name="second"),
    ]
    for thread in threads:
        thread.start()
    # While the first transaction is open, the second cannot take a decision id, let alone commit one.
    assert not second_done.wait(timeout=1.5), "a decision committed while an earlier one was still open"
    release_first.set()
    for thread in threads:
        thread.join(timeout=15)

    assert second_done.is_set()
    assert committed_ids == sorted(committed_ids), "a later commit never has a lower id"
    assert list(Decision.objects.order_by("id").values_list("reason", flat=True)) == ["approve", "deny"]
