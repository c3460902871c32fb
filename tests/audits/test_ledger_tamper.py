"""The ledger detects each way of tampering with it, refuses rewrites on PostgreSQL, and never forks."""

import threading

import pytest
from django.db import DatabaseError, IntegrityError, connection, connections, transaction

from audits.ledger import (
    GENESIS_HASH,
    LedgerEntry,
    event_hash,
    ledger_anchor_check,
    ledger_append,
    ledger_append_many,
    ledger_check_events,
    ledger_verify,
    ledger_with_prior_hash,
)
from audits.models import DecisionEvent
from tests.audits.conftest import ledger_tampering


def _chain(count: int = 5) -> list[DecisionEvent]:
    return ledger_append_many(
        [LedgerEntry("decision.made", "reviews.decision", n, {"label": "approve", "n": n}) for n in range(count)]
    )


def _row(event_id: int) -> dict:
    return DecisionEvent.objects.filter(pk=event_id).values().get()


def test_an_untouched_chain_verifies_with_its_head_and_last_event(db):
    events = _chain()

    result = ledger_verify()

    assert result.intact
    assert (result.checked, result.head_hash, result.last_event_id) == (5, events[-1].hash, events[-1].pk)


def test_it_detects_an_altered_payload(db):
    events = _chain()
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[2].pk).update(payload='{"label":"deny","n":2}')

    result = ledger_verify()

    assert not result.intact
    assert result.broken_event_id == events[2].pk
    assert result.checked == 2
    assert result.found_hash == events[2].hash
    assert result.expected_hash != events[2].hash
    assert "altered" in result.problem


def test_it_detects_a_deleted_event(db):
    events = _chain()
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[2].pk).delete()

    result = ledger_verify()

    assert not result.intact
    assert result.broken_event_id == events[3].pk
    assert result.expected_hash == events[1].hash
    assert result.found_hash == events[2].hash
    assert "removed, inserted or reordered" in result.problem


def test_it_detects_two_events_swapped_in_order(db):
    events = _chain()
    second, third = _row(events[1].pk), _row(events[2].pk)
    with ledger_tampering():
        # Swap every column but the id: the rows now sit in each other's place in the chain.
        DecisionEvent.objects.filter(pk=events[1].pk).update(**{**third, "id": events[1].pk, "hash": "x" * 64})
        DecisionEvent.objects.filter(pk=events[2].pk).update(**{**second, "id": events[2].pk})
        DecisionEvent.objects.filter(pk=events[1].pk).update(hash=third["hash"])

    result = ledger_verify()

    assert not result.intact
    assert result.broken_event_id == events[1].pk
    assert result.expected_hash == events[0].hash
    assert result.found_hash == events[1].hash


def test_it_detects_an_event_inserted_into_the_chain(db):
    events = _chain(3)
    with ledger_tampering():
        # Ids have gaps in real life (rolled-back sequence values); open one after the second event.
        DecisionEvent.objects.filter(pk=events[2].pk).update(id=events[2].pk + 10)
    assert ledger_verify().intact

    forged = {
        "event_type": "decision.made",
        "actor_id": None,
        "actor_label": "system",
        "object_type": "reviews.decision",
        "object_id": "99",
        "payload": '{"label":"approve"}',
        "created_at": events[1].created_at,
        "previous_hash": events[1].hash,
    }
    DecisionEvent.objects.create(id=events[2].pk + 5, hash=event_hash(**forged), **forged)

    result = ledger_verify()

    assert not result.intact
    assert result.broken_event_id == events[2].pk + 10
    assert result.expected_hash == event_hash(**forged)
    assert result.found_hash == events[1].hash


def test_an_exported_head_exposes_a_chain_rewritten_from_the_start(db):
    events = _chain(3)
    anchored = ledger_anchor_check(head_hash=events[-1].hash, event_count=3)
    assert anchored.holds

    with ledger_tampering():
        DecisionEvent.objects.all().delete()
    # The attacker re-appends a consistent chain with one decision changed: it verifies on its own...
    ledger_append_many(
        [LedgerEntry("decision.made", "reviews.decision", n, {"label": "deny", "n": n}) for n in range(3)]
    )
    assert ledger_verify().intact

    # ...but not against the head exported before.
    assert not ledger_anchor_check(head_hash=events[-1].hash, event_count=3).holds


def test_an_exported_head_exposes_events_cut_from_the_end(db):
    events = _chain(4)
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()

    assert ledger_verify().intact
    check = ledger_anchor_check(head_hash=events[-1].hash, event_count=4)
    assert not check.holds
    assert check.found_hash == ""


def test_each_event_of_a_case_is_checked_against_its_hash_and_the_event_before_it(db):
    events = _chain(4)
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[1].pk).update(payload='{"label":"deny","n":1}')

    checks = ledger_check_events(
        ledger_with_prior_hash(DecisionEvent.objects.filter(pk__in=[events[0].pk, events[1].pk, events[3].pk]))
    )

    assert [(c.content_intact, c.link_intact) for c in checks] == [(True, True), (False, True), (True, True)]
    assert checks[0].prior_hash == GENESIS_HASH
    assert checks[2].prior_hash == events[2].hash


@pytest.mark.postgres
def test_postgresql_refuses_to_update_a_ledger_event(db):
    event = ledger_append(event_type="decision.made", object_type="reviews.decision", object_id=1, payload={})

    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        DecisionEvent.objects.filter(pk=event.pk).update(payload="{}")

    assert DecisionEvent.objects.get(pk=event.pk).payload == event.payload


@pytest.mark.postgres
def test_postgresql_refuses_to_delete_a_ledger_event(db):
    event = ledger_append(event_type="decision.made", object_type="reviews.decision", object_id=1, payload={})

    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audits_decisionevent WHERE id = %s", [event.pk])

    assert DecisionEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_from_many_connections_form_one_unforked_chain():
    threads_count, per_thread = 6, 25
    errors: list[BaseException] = []
    start = threading.Barrier(threads_count)

    def append_many(worker: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                with transaction.atomic():
                    ledger_append(
                        event_type="review.submitted",
                        object_type="reviews.review",
                        object_id=f"{worker}-{n}",
                        payload={"worker": worker, "n": n},
                    )
        except (DatabaseError, threading.BrokenBarrierError) as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=append_many, args=(worker,)) for worker in range(threads_count)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)

    assert errors == []
    result = ledger_verify()
    assert result.intact
    assert result.checked == threads_count * per_thread
    previous = list(DecisionEvent.objects.values_list("previous_hash", flat=True))
    assert len(set(previous)) == len(previous)  # no two events claim the same predecessor: no fork
