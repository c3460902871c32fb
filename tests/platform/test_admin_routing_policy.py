"""Routing policies in the console: changed only with a reason, through the service, historised and in the ledger."""

import json

import pytest
from django.urls import reverse

from audits.models import DecisionEvent
from reviews.models import RoutingPolicy
from tests.reviews.factories import RoutingPolicyFactory


@pytest.fixture
def policy(db):
    return RoutingPolicyFactory(auto_decide_threshold=0.8, qa_sample_rate=0.05)


def _form(policy: RoutingPolicy, **changes) -> dict:
    data = {
        "auto_decide_threshold": policy.auto_decide_threshold,
        # Rules and label thresholds are rows (tests/reviews/test_policy_rule_editor.py): none here.
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
        "thresholds-TOTAL_FORMS": "0",
        "thresholds-INITIAL_FORMS": "0",
        "qa_sample_rate": policy.qa_sample_rate,
        "reviews_required": "" if policy.reviews_required is None else policy.reviews_required,
        "consensus_rule": policy.consensus_rule,
        "min_agreement": policy.min_agreement,
        "sla_hours": policy.sla_hours,
        "assignment_strategy": policy.assignment_strategy,
        "max_open_claims_per_reviewer": policy.max_open_claims_per_reviewer,
        "lease_minutes": policy.lease_minutes,
        "gold_rate": policy.gold_rate,
        "reason": "",
    }
    if policy.blind_review:
        data["blind_review"] = "on"
    return {**data, **changes}


def test_a_compliance_officer_changes_a_policy_with_a_reason(client, compliance_officer, policy):
    client.force_login(compliance_officer)
    url = reverse("admin:reviews_routingpolicy_change", args=[policy.pk])

    response = client.post(url, _form(policy, auto_decide_threshold="0.9", reason="Too many wrong approvals"))

    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.auto_decide_threshold == 0.9
    latest = policy.history.order_by("-history_date").first()
    assert (latest.history_user, latest.history_change_reason) == (compliance_officer, "Too many wrong approvals")
    event = DecisionEvent.objects.get(event_type="policy.changed")
    assert event.actor_label == compliance_officer.username
    assert json.loads(event.payload)["changes"] == {"auto_decide_threshold": {"from": 0.8, "to": 0.9}}


def test_a_policy_change_without_a_reason_is_a_form_error(client, compliance_officer, policy):
    client.force_login(compliance_officer)
    url = reverse("admin:reviews_routingpolicy_change", args=[policy.pk])

    response = client.post(url, _form(policy, auto_decide_threshold="0.9"))

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    policy.refresh_from_db()
    assert policy.auto_decide_threshold == 0.8
    assert not DecisionEvent.objects.exists()


def test_a_bad_value_is_a_form_error_from_the_services_own_check(client, compliance_officer, policy):
    client.force_login(compliance_officer)
    url = reverse("admin:reviews_routingpolicy_change", args=[policy.pk])

    response = client.post(url, _form(policy, qa_sample_rate="1.5", reason="More QA"))

    assert response.status_code == 200
    assert "Enter a number between 0 and 1." in response.content.decode()
    policy.refresh_from_db()
    assert policy.qa_sample_rate == 0.05


def test_the_stop_switch_is_turned_on_and_off_with_a_reason(client, compliance_officer, policy):
    client.force_login(compliance_officer)
    url = reverse("admin:reviews_routingpolicy_stop_switch", args=[policy.pk])

    assert "Turn the stop switch ON" in client.get(url).content.decode()
    assert client.post(url, {"reason": ""}).status_code == 200
    assert client.post(url, {"reason": "Drift alarm on the approval rate"}).status_code == 302
    policy.refresh_from_db()
    assert (policy.stop_switch_on, policy.stop_switch_changed_by) == (True, compliance_officer)
    assert client.post(url, {"reason": "Drift explained"}).status_code == 302
    policy.refresh_from_db()
    assert policy.stop_switch_on is False
    reasons = list(policy.history.order_by("history_date").values_list("history_change_reason", flat=True))
    assert reasons[-2:] == ["Drift alarm on the approval rate", "Drift explained"]
    assert DecisionEvent.objects.filter(object_type="reviews.routingpolicy").count() == 2


def test_people_without_the_permission_cannot_change_policies(client, compliance_officer, policy):
    compliance_officer.groups.clear()
    compliance_officer.is_staff = True
    compliance_officer.save()
    client.force_login(compliance_officer)

    change = client.post(
        reverse("admin:reviews_routingpolicy_change", args=[policy.pk]),
        _form(policy, auto_decide_threshold="0.5", reason="x"),
    )
    toggle = client.post(reverse("admin:reviews_routingpolicy_stop_switch", args=[policy.pk]), {"reason": "x"})

    assert (change.status_code, toggle.status_code) == (403, 403)
    policy.refresh_from_db()
    assert (policy.auto_decide_threshold, policy.stop_switch_on) == (0.8, False)


def test_policies_are_neither_added_nor_deleted_in_the_console(client, admin_user, policy):
    client.force_login(admin_user)
    assert client.get(reverse("admin:reviews_routingpolicy_add")).status_code == 403
    assert (
        client.post(reverse("admin:reviews_routingpolicy_delete", args=[policy.pk]), {"post": "yes"}).status_code == 403
    )
    assert RoutingPolicy.objects.filter(pk=policy.pk).exists()
