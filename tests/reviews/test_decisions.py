from audits.ledger import ledger_verify
from audits.models import DecisionEvent
from reviews.choices import DecisionSource
from reviews.models import Webhook, WebhookDelivery
from reviews.services.decisions import decision_record
from tests.reviews.factories import PredictionFactory


def test_a_recorded_decision_leaves_history_ledger_and_one_delivery_per_subscribed_webhook(db, adjudicator):
    prediction = PredictionFactory()
    subscribed = Webhook.objects.create(
        owner=prediction.model.owner, url="https://example.org/hook", events=["decision.final"], secret="s" * 32
    )
    Webhook.objects.create(owner=prediction.model.owner, url="https://example.org/other", events=[], secret="x" * 32)

    decision = decision_record(
        prediction=prediction,
        final_label="deny",
        source=DecisionSource.ADJUDICATION,
        agreement=0.5,
        decided_by=adjudicator,
        reason="Adjudicated: income not verified",
    )

    history = decision.history.get()
    assert (history.history_user, history.history_change_reason) == (adjudicator, "Adjudicated: income not verified")
    event = DecisionEvent.objects.get(object_type="reviews.decision", object_id=str(decision.pk))
    assert event.actor_label == adjudicator.username
    assert '"label":"deny"' in event.payload
    assert "credit_amount" not in event.payload
    delivery = WebhookDelivery.objects.get()
    assert delivery.webhook == subscribed
    assert delivery.payload["decision"]["label"] == "deny"
    assert ledger_verify().intact
