"""Appeals: an adjudicator reverses a final decision with a reason; the original stays in the trail."""

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from audits.ledger import ledger_verify
from audits.models import DecisionEvent
from audits.selectors.cases import case_trail
from reviews.choices import DecisionSource
from reviews.models import WebhookDelivery
from reviews.services.appeals import decision_reverse_on_appeal


def test_a_reversal_keeps_the_original_in_history_and_ledger_and_notifies_webhooks(reviewed_case, adjudicator):
    prediction, _, decision = reviewed_case

    reversed_decision = decision_reverse_on_appeal(
        decision=decision, final_label="approve", actor=adjudicator, reason="Applicant proved a second income"
    )

    assert (reversed_decision.final_label, reversed_decision.source) == ("approve", DecisionSource.ADJUDICATION)
    original, reversal = decision.history.order_by("history_date")
    assert original.final_label == "deny"
    assert (reversal.final_label, reversal.history_user, reversal.history_change_reason) == (
        "approve",
        adjudicator,
        "Reversed on appeal: Applicant proved a second income",
    )
    made, reversed_event = DecisionEvent.objects.filter(object_id=str(decision.pk)).order_by("id")
    assert made.event_type == "decision.made"
    assert reversed_event.event_type == "decision.reversed"
    assert reversed_event.actor_label == adjudicator.username
    payload = json.loads(reversed_event.payload)
    assert (payload["previous"]["label"], payload["label"]) == ("deny", "approve")
    assert payload["reason"] == "Applicant proved a second income"
    assert payload["input_sha256"] == prediction.input_sha256
    newest = WebhookDelivery.objects.order_by("-id").first()
    assert newest.payload["decision"]["label"] == "approve"
    assert newest.payload["decision"]["reversed_on_appeal"] == {"previous_label": "deny"}
    assert ledger_verify().intact
    assert [c.event.event_type for c in case_trail(prediction_id=prediction.pk).ledger] == [
        "decision.made",
        "decision.reversed",
    ]


def test_only_adjudicators_may_reverse_a_decision(reviewed_case, reviewer_a, compliance_officer):
    _, _, decision = reviewed_case
    for person in (reviewer_a, compliance_officer):
        with pytest.raises(PermissionDenied):
            decision_reverse_on_appeal(decision=decision, final_label="approve", actor=person, reason="Because")
    decision.refresh_from_db()
    assert decision.final_label == "deny"
    assert not DecisionEvent.objects.filter(event_type="decision.reversed").exists()


@pytest.mark.parametrize(
    ("label", "reason", "field"),
    [("approve", "  ", "reason"), ("maybe", "Because", "final_label"), ("deny", "Because", "final_label")],
)
def test_a_reversal_needs_a_reason_and_a_different_known_label(reviewed_case, adjudicator, label, reason, field):
    _, _, decision = reviewed_case

    with pytest.raises(ValidationError) as failure:
        decision_reverse_on_appeal(decision=decision, final_label=label, actor=adjudicator, reason=reason)

    assert field in failure.value.message_dict
    assert decision.history.count() == 1


def test_an_adjudicator_with_console_access_reverses_a_decision_from_its_page(client, reviewed_case, adjudicator):
    _, _, decision = reviewed_case
    adjudicator.is_staff = True
    adjudicator.save(update_fields=["is_staff"])
    client.force_login(adjudicator)
    url = reverse("admin:decision_appeal", args=[decision.pk])

    empty = client.post(url, {"final_label": "approve", "reason": ""})
    assert empty.status_code == 200
    assert "Give a reason: it is recorded in the history and the ledger." in empty.content.decode()

    response = client.post(url, {"final_label": "approve", "reason": "New evidence"})
    assert response.status_code == 302
    # Adjudicators do not read the console's case pages: they land on its index.
    assert response.url == reverse("admin:index")
    decision.refresh_from_db()
    assert decision.final_label == "approve"


def test_compliance_officers_cannot_open_the_appeal_page(client, reviewed_case, compliance_officer):
    _, _, decision = reviewed_case
    client.force_login(compliance_officer)
    url = reverse("admin:decision_appeal", args=[decision.pk])

    assert client.get(url).status_code == 403
    assert client.post(url, {"final_label": "approve", "reason": "x"}).status_code == 403


def test_an_appeals_webhook_deliveries_are_sent_when_it_commits_not_at_the_next_sweep(
    reviewed_case, adjudicator, django_capture_on_commit_callbacks, monkeypatch
):
    """The finding: a reversal wrote its outbox rows but queued no send; they waited for the minute sweep."""
    from reviews import tasks

    _, _, decision = reviewed_case
    sent: list[list[int]] = []
    monkeypatch.setattr(tasks.send_webhook_deliveries, "delay", sent.append)

    with django_capture_on_commit_callbacks(execute=True):
        decision_reverse_on_appeal(decision=decision, final_label="approve", actor=adjudicator, reason="New income")

    reversal = WebhookDelivery.objects.order_by("-id").first()
    assert sent == [[reversal.pk]]
