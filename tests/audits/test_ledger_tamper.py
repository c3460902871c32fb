"""The ledger detects each way of tampering with it, refuses rewrites on PostgreSQL, and never forks.

One test (at least) per tamper class of docs/ledger.md: altered event, deleted middle, deleted tail, forged
append, rewritten tail with recomputed hashes (with and without the key), reordered.
"""

import importlib
import threading
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import DatabaseError, IntegrityError, connection, connections, transaction

from audits.anchors import anchor_sink
from audits.choices import LedgerCheckOrigin
from audits.ledger import (
    GENESIS_HASH,
    LedgerEntry,
    canonical_json,
    event_hash,
    event_seal,
    ledger_anchor_check,
    ledger_append,
    ledger_append_many,
    ledger_check_events,
    ledger_verify,
    ledger_with_prior_hash,
)
from audits.models import DecisionEvent, LedgerCheck
from audits.selectors.ledger import ledger_head_offered
from audits.services.ledger_checks import ledger_anchor_run, ledger_check_run
from tests.audits.conftest import ledger_tampering

seal_migration = importlib.import_module("audits.migrations.0006_ledger_seals_and_recorded_heads")


def _chain(count: int = 5) -> list[DecisionEvent]:
    return ledger_append_many(
        [LedgerEntry("decision.made", "reviews.decision", n, {"label": "approve", "n": n}) for n in range(count)]
    )


def _row(event_id: int) -> dict:
    return DecisionEvent.objects.filter(pk=event_id).values().get()


def _verification() -> LedgerCheck:
    return ledger_check_run(check=LedgerCheck.objects.create(origin=LedgerCheckOrigin.SCHEDULE))


def _forged_fields(previous: DecisionEvent, *, object_id: str = "99", label: str = "approve") -> dict:
    return {
        "event_type": "decision.made",
        "actor_id": None,
        "actor_label": "system",
        "object_type": "reviews.decision",
        "object_id": object_id,
        "payload": canonical_json({"label": label}),
        "created_at": previous.created_at,
        "previous_hash": previous.hash,
    }


def _rewrite_tail(events: list[DecisionEvent], *, start: int, seal_key: bytes | None) -> None:
    """Rewrite events[start:] with a new payload and every hash recomputed, as an attacker with table access would.

    With ``seal_key`` the attacker also re-seals (they hold a key); without it the old seals stay.
    """
    previous_hash = events[start - 1].hash
    with ledger_tampering():
        for event in events[start:]:
            fields = {
                "event_type": event.event_type,
                "actor_id": event.actor_id,
                "actor_label": event.actor_label,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "payload": canonical_json({"label": "deny", "n": event.object_id}),
                "created_at": event.created_at,
                "previous_hash": previous_hash,
            }
            digest = event_hash(**fields)
            seal = event_seal(digest, key=seal_key) if seal_key else event.seal
            DecisionEvent.objects.filter(pk=event.pk).update(**fields, hash=digest, seal=seal)
            previous_hash = digest


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

    forged = _forged_fields(events[1])
    # Even with a correct hash and a seal copied from a real event, the forgery fails at itself: its seal.
    DecisionEvent.objects.create(id=events[2].pk + 5, hash=event_hash(**forged), seal=events[1].seal, **forged)

    result = ledger_verify()

    assert not result.intact
    assert result.broken_event_id == events[2].pk + 5
    assert result.problem.startswith("forged or re-sealed")


def test_it_detects_an_event_appended_with_a_correct_hash_but_without_the_key(db):
    events = _chain(3)
    forged = _forged_fields(events[-1], label="deny")
    digest = event_hash(**forged)
    forged_event = DecisionEvent.objects.create(hash=digest, seal=event_seal(digest, key=b"a guessed key"), **forged)

    result = ledger_verify()

    assert not result.intact
    assert (result.broken_event_id, result.checked) == (forged_event.pk, 3)
    assert "forged or re-sealed" in result.problem
    (check,) = ledger_check_events(ledger_with_prior_hash(DecisionEvent.objects.filter(pk=forged_event.pk)))
    assert (check.content_intact, check.link_intact, check.seal_intact, check.intact) == (True, True, False, False)


def test_it_detects_a_tail_rewritten_with_recomputed_hashes_by_its_seals(db):
    events = _chain(5)
    _rewrite_tail(events, start=3, seal_key=None)

    result = ledger_verify()

    assert not result.intact
    assert result.broken_event_id == events[3].pk
    assert "forged or re-sealed" in result.problem


def test_a_tail_rewritten_and_re_sealed_with_the_key_breaks_the_next_verification_at_the_recorded_head(db):
    events = _chain(5)
    assert _verification().status == "intact"
    _rewrite_tail(events, start=3, seal_key=seal_migration._key())
    assert ledger_verify().intact  # links, hashes and seals all hold: only the recorded head sees it

    check = _verification()

    assert check.status == "broken"
    assert check.broken_event_id == events[-1].pk
    rewritten = DecisionEvent.objects.get(pk=events[-1].pk)
    assert (check.expected_hash, check.found_hash) == (events[-1].hash, rewritten.hash)
    assert "verification" in check.problem and "rewritten" in check.problem
    assert check.head_signature == ""
    assert ledger_head_offered() is None


def test_a_tail_rewritten_and_re_sealed_with_the_key_fails_the_next_anchor_run(db):
    events = _chain(5)
    assert ledger_anchor_run().anchor.event_count == 5
    _rewrite_tail(events, start=3, seal_key=seal_migration._key())

    run = ledger_anchor_run()

    assert run.anchor is None
    assert run.check.status == "broken" and run.check.origin == "anchor"
    assert run.check.broken_event_id == events[-1].pk
    assert len(list(anchor_sink().anchors())) == 1


def test_events_cut_from_the_end_break_the_next_verification_at_the_recorded_head(db):
    events = _chain(5)
    first = _verification()
    assert (first.status, first.checked, first.last_event_id) == ("intact", 5, events[-1].pk)
    with ledger_tampering():
        DecisionEvent.objects.filter(pk__in=[events[3].pk, events[4].pk]).delete()
    assert ledger_verify().intact  # what the chain alone says of a shorter chain

    check = _verification()

    assert check.status == "broken"
    assert check.broken_event_id == events[-1].pk
    assert "removed from its end" in check.problem
    assert check.head_signature == ""  # a broken run's head is never signed, so never compared or offered
    # The console never offers the truncated head as the new anchor, not even once the break is old.
    assert ledger_head_offered() is None
    assert _verification().status == "broken"
    assert ledger_head_offered() is None


def test_events_cut_from_the_end_fail_the_next_anchor_run_once_and_nothing_is_anchored(db):
    events = _chain(4)
    assert ledger_anchor_run().anchor is not None
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()

    first, second = ledger_anchor_run(), ledger_anchor_run()

    assert first.anchor is None and second.anchor is None
    assert first.check.pk == second.check.pk  # one broken verification per break, not one a minute
    assert first.check.broken_event_id == events[-1].pk
    assert "no longer in the chain" in first.check.problem
    assert len(list(anchor_sink().anchors())) == 1


def test_a_head_recorded_in_the_database_without_the_key_breaks_the_next_verification(db):
    events = _chain(3)
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()
    # An attacker who cut the chain records the shorter head as a verification of their own...
    LedgerCheck.objects.create(status="intact", checked=2, last_event_id=events[1].pk, head_hash=events[1].hash)

    check = _verification()

    assert check.status == "broken"
    assert "not signed with this deployment's ledger key" in check.problem


def test_the_seal_migration_seals_existing_events_and_leaves_the_append_only_trigger_on(db):
    events = _chain(3)
    with ledger_tampering():
        DecisionEvent.objects.update(seal="")
    assert not ledger_verify().intact

    seal_migration.seal_existing_events(apps, SimpleNamespace(connection=connection))

    assert ledger_verify().intact
    assert DecisionEvent.objects.get(pk=events[0].pk).seal == event_seal(events[0].hash)
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            DecisionEvent.objects.filter(pk=events[0].pk).update(seal="")


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
def test_on_postgresql_cutting_the_tail_needs_the_trigger_disabled_and_is_still_caught(db):
    events = _chain(4)
    assert _verification().status == "intact"
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()

    check = _verification()

    assert (check.status, check.broken_event_id) == ("broken", events[-1].pk)


@pytest.mark.postgres
def test_on_postgresql_a_tail_rewritten_past_the_trigger_is_caught_by_its_seals_and_the_recorded_head(db):
    events = _chain(4)
    assert _verification().status == "intact"
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        DecisionEvent.objects.filter(pk=events[-1].pk).update(payload="{}")
    _rewrite_tail(events, start=2, seal_key=None)
    assert "forged or re-sealed" in ledger_verify().problem
    _rewrite_tail(events, start=2, seal_key=seal_migration._key())

    check = _verification()

    assert (check.status, check.broken_event_id) == ("broken", events[-1].pk)


@pytest.mark.postgres
def test_on_postgresql_an_appended_forgery_needs_no_trigger_and_is_caught_by_its_seal(db):
    events = _chain(2)
    forged = _forged_fields(events[-1])
    DecisionEvent.objects.create(hash=event_hash(**forged), seal="0" * 64, **forged)

    assert "forged or re-sealed" in ledger_verify().problem


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
