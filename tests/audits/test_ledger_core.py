from audits.ledger import (
    GENESIS_HASH,
    LedgerEntry,
    canonical_json,
    ledger_append,
    ledger_append_many,
    ledger_verify,
)
from audits.models import DecisionEvent
from tests.audits.conftest import ledger_tampering


def test_appended_events_form_an_intact_chain(db, compliance_officer):
    first = ledger_append(
        event_type="policy.changed",
        object_type="reviews.routingpolicy",
        object_id=1,
        payload={"reason": "tighten threshold", "threshold": 0.9},
        actor=compliance_officer,
    )
    batch = ledger_append_many(
        [LedgerEntry("prediction.routed", "reviews.prediction", n, {"route": "auto"}) for n in range(3)]
    )

    assert first.previous_hash == GENESIS_HASH
    assert [event.previous_hash for event in batch] == [first.hash, batch[0].hash, batch[1].hash]
    assert first.actor_label == "carla_compliance"
    assert batch[0].actor_label == "system"
    result = ledger_verify()
    assert result.intact
    assert result.checked == 4
    assert result.head_hash == batch[-1].hash


def test_verify_names_an_altered_event(db):
    events = ledger_append_many(
        [LedgerEntry("decision.made", "reviews.decision", n, {"label": "approve"}) for n in range(3)]
    )
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[1].pk).update(payload='{"label":"deny"}')

    result = ledger_verify()

    assert not result.intact
    assert result.broken_event_id == events[1].pk
    assert result.found_hash == events[1].hash


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_unicode():
    assert canonical_json({"b": [1, None], "a": "Zürich"}) == '{"a":"Zürich","b":[1,null]}'
