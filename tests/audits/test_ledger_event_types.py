"""The ledger console's event type filter: it offers the types the services append, and only those."""

import pytest
from django.urls import reverse

from audits.ledger import ledger_append

pytestmark = pytest.mark.django_db


def test_a_gate_override_can_be_found_by_its_type_and_no_never_emitted_type_is_offered(client, compliance_officer):
    override = ledger_append(
        event_type="promotion.gate_overridden", object_type="models_registry.promotionrequest", object_id=7, payload={}
    )
    ledger_append(event_type="decision.made", object_type="reviews.decision", object_id=8, payload={})
    client.force_login(compliance_officer)
    changelist = reverse("admin:audits_decisionevent_changelist")

    page = client.get(changelist).content.decode()
    assert "?event_type=promotion.gate_overridden" in page
    assert "?event_type=audit.finished" in page
    assert "?event_type=retraining.finished" in page
    assert "model.deleted" not in page

    filtered = client.get(changelist, {"event_type": "promotion.gate_overridden"})
    assert [event.pk for event in filtered.context["cl"].result_list] == [override.pk]
