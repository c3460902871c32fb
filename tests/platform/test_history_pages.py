"""The console's history pages read as the forms do: fields by their names, changed values whole."""

import pytest
from django.urls import reverse

from reviews.services.policies import routing_policy_update
from tests.reviews.factories import RoutingPolicyFactory

LONG_RULE = {
    "field": "credit_amount",
    "operator": ">",
    "value": 10000,
    "action": "review",
    "reason": "Large loans need a second look by a credit officer before anything is decided",
}


@pytest.fixture
def policy(db):
    return RoutingPolicyFactory(
        model__feature_schema={"type": "object", "properties": {"credit_amount": {"type": "number"}}}
    )


def test_a_policy_change_shows_its_rule_whole_under_the_fields_names(client, compliance_officer, policy):
    routing_policy_update(
        policy=policy,
        changes={"rules": [LONG_RULE], "qa_sample_rate": 0.1},
        actor=compliance_officer,
        reason="Committee 12",
    )
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:reviews_routingpolicy_history", args=[policy.pk])).content.decode()

    assert "Auto-decide threshold" in html and "auto_decide_threshold" not in html
    assert "chars]" not in html
    assert "Large loans need a second look by a credit officer before anything is decided" in html
    assert "&quot;operator&quot;: &quot;&gt;&quot;" in html
    assert "Committee 12" in html
