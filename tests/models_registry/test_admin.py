import json

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from audits.models import DecisionEvent
from hitl_platform.roles import Role
from models_registry import gates
from models_registry.choices import PromotionStatus, Stage
from models_registry.gates import GateResult
from tests.audits.factories import BiasAuditFactory
from tests.factories import UserFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory, PromotionRequestFactory

REQUESTS_URL = reverse("admin:models_registry_promotionrequest_changelist")


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def choose_action(client, action: str, *requests):
    return client.post(REQUESTS_URL, {"action": action, "_selected_action": [r.pk for r in requests]})


def confirm_action(client, action: str, reason: str, *requests):
    return client.post(
        REQUESTS_URL,
        {"action": action, "_selected_action": [r.pk for r in requests], "apply": "1", "reason": reason},
    )


@pytest.fixture
def officer_client(client, compliance_officer):
    client.force_login(compliance_officer)
    return client


@pytest.fixture
def pending(ml_engineer):
    current = ModelVersionFactory(model__name="credit", number=1, stage=Stage.PRODUCTION)
    candidate = ModelVersionFactory(model=current.model, number=2)
    BiasAuditFactory(version=candidate)
    return PromotionRequestFactory(version=candidate, requester=ml_engineer, rationale="F1 up four points.")


def test_a_compliance_officer_approves_after_giving_a_reason_and_sees_the_gates(
    officer_client, compliance_officer, pending
):
    confirmation = choose_action(officer_client, "approve_requests", pending)

    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert 'name="reason"' in page
    assert "F1 up four points." in page
    assert "evaluation_metrics" in page  # the gates as they stand now
    pending.refresh_from_db()
    assert pending.status == PromotionStatus.PENDING

    response = confirm_action(officer_client, "approve_requests", "Audit 2024-05 passed.", pending)

    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == PromotionStatus.APPROVED
    assert pending.decided_by == compliance_officer
    assert pending.decision_reason == "Audit 2024-05 passed."
    assert pending.version.stage == Stage.PRODUCTION
    [message] = messages_of(response)
    assert message.startswith(f"Approved #{pending.pk}")
    assert "evaluation_metrics passed" in message
    assert json.loads(DecisionEvent.objects.get(event_type="promotion.decided").payload)["status"] == "approved"


def test_a_compliance_officer_rejects_with_a_reason(officer_client, compliance_officer, pending):
    response = confirm_action(officer_client, "reject_requests", "No bias audit yet.", pending)

    assert response.status_code == 302
    pending.refresh_from_db()
    assert (pending.status, pending.decision_reason) == (PromotionStatus.REJECTED, "No bias audit yet.")
    record = pending.history.first()
    assert (record.history_user, record.history_change_reason) == (compliance_officer, "No bias audit yet.")


def test_a_decision_without_a_reason_is_not_taken(officer_client, pending):
    response = confirm_action(officer_client, "approve_requests", "", pending)
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == PromotionStatus.PENDING


def test_a_compliance_officer_may_not_decide_their_own_request(officer_client, compliance_officer):
    own = PromotionRequestFactory(requester=compliance_officer)

    confirmation = choose_action(officer_client, "approve_requests", own)
    assert "four-eyes forbids you to decide it" in confirmation.content.decode()
    response = confirm_action(officer_client, "approve_requests", "Looks fine to me.", own)

    own.refresh_from_db()
    assert own.status == PromotionStatus.PENDING
    assert any("Four-eyes" in message for message in messages_of(response))


def test_a_failing_gate_is_reported_and_the_request_stays_pending(officer_client, pending, monkeypatch):
    def bias_audit(version, target_stage):
        return GateResult("bias_audit", False, "Demographic parity ratio 0.62 is below 0.80.")

    monkeypatch.setitem(gates._GATES, "bias_audit", bias_audit)

    response = confirm_action(officer_client, "approve_requests", "Go.", pending)

    pending.refresh_from_db()
    assert pending.status == PromotionStatus.PENDING
    [message] = messages_of(response)
    assert "not approved" in message
    assert "Demographic parity ratio 0.62 is below 0.80." in message
    detail = officer_client.get(reverse("admin:models_registry_promotionrequest_change", args=[pending.pk]))
    assert "Demographic parity ratio 0.62" in detail.content.decode()


def test_people_without_the_decide_permission_are_not_offered_the_actions(client, pending):
    viewer = UserFactory(username="vera_viewer")
    viewer.is_staff = True
    viewer.save(update_fields=["is_staff"])
    viewer.user_permissions.add(Permission.objects.get(codename="view_promotionrequest"))
    client.force_login(viewer)

    changelist = client.get(REQUESTS_URL)
    assert changelist.status_code == 200
    assert "approve_requests" not in changelist.content.decode()
    confirm_action(client, "approve_requests", "Sneaky.", pending)

    pending.refresh_from_db()
    assert pending.status == PromotionStatus.PENDING


def test_ml_engineers_have_no_console_access(client, ml_engineer, pending):
    client.force_login(ml_engineer)
    response = confirm_action(client, "approve_requests", "Self-service.", pending)
    assert response.status_code == 302
    assert "/login/" in response.url
    pending.refresh_from_db()
    assert pending.status == PromotionStatus.PENDING


def test_decided_requests_are_read_only_and_nothing_can_be_deleted(officer_client, pending, compliance_officer):
    confirm_action(officer_client, "reject_requests", "No.", pending)
    change_url = reverse("admin:models_registry_promotionrequest_change", args=[pending.pk])

    page = officer_client.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert officer_client.post(change_url, {"status": "approved"}).status_code == 403
    delete_url = reverse("admin:models_registry_promotionrequest_delete", args=[pending.pk])
    assert officer_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert "delete_selected" not in officer_client.get(REQUESTS_URL).content.decode()
    pending.refresh_from_db()
    assert pending.status == PromotionStatus.REJECTED


@pytest.mark.parametrize("admin_name", ["mlmodel", "modelversion"])
def test_compliance_officers_are_read_only_on_models_and_versions(officer_client, pending, admin_name):
    obj = pending.version if admin_name == "modelversion" else pending.version.model
    change_url = reverse(f"admin:models_registry_{admin_name}_change", args=[obj.pk])

    assert officer_client.get(reverse(f"admin:models_registry_{admin_name}_changelist")).status_code == 200
    page = officer_client.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert officer_client.post(change_url, {"risk_tier": "low", "change_reason": "x"}).status_code == 403
    history = officer_client.get(reverse(f"admin:models_registry_{admin_name}_history", args=[obj.pk]))
    assert history.status_code == 200


def test_history_pages_show_who_changed_what_and_why_but_cannot_be_posted_back(officer_client, pending):
    confirm_action(officer_client, "reject_requests", "Missing fairness evidence.", pending)
    history_url = reverse("admin:models_registry_promotionrequest_history", args=[pending.pk])

    history = officer_client.get(history_url)
    assert history.status_code == 200
    assert "Missing fairness evidence." in history.content.decode()
    first_version = pending.history.last()
    old_state_url = f"{history_url}{first_version.history_id}/"
    assert officer_client.get(old_state_url).status_code == 200
    assert officer_client.post(old_state_url, {}).status_code == 405
    pending.refresh_from_db()
    assert pending.status == PromotionStatus.REJECTED


def test_an_administrator_edits_a_model_card_with_a_reason(client, admin_user):
    model = MLModelFactory(name="credit", review_guidelines="")
    client.force_login(admin_user)
    change_url = reverse("admin:models_registry_mlmodel_change", args=[model.pk])
    form = {
        "description": model.description,
        "task": model.task,
        "labels": json.dumps(model.labels),
        "positive_label": model.positive_label,
        "feature_schema": json.dumps(model.feature_schema),
        "sensitive_attributes": json.dumps(model.sensitive_attributes),
        "risk_tier": model.risk_tier,
        "intended_use": model.intended_use,
        "out_of_scope_use": "",
        "limitations": "",
        "ethical_considerations": "",
        "review_guidelines": "Check the income proof first.",
    }

    without_reason = client.post(change_url, form)
    assert without_reason.status_code == 200
    model.refresh_from_db()
    assert model.review_guidelines == ""

    response = client.post(change_url, {**form, "change_reason": "Reviewer feedback, week 12."})

    assert response.status_code == 302
    model.refresh_from_db()
    assert model.review_guidelines == "Check the income proof first."
    record = model.history.first()
    assert (record.history_user, record.history_change_reason) == (admin_user, "Reviewer feedback, week 12.")
    assert json.loads(DecisionEvent.objects.get(event_type="model.updated").payload)["fields"] == ["review_guidelines"]


def test_the_registry_lists_in_the_console_do_not_grow_queries_with_rows(
    officer_client, ml_engineer, django_assert_num_queries
):
    for number in range(1, 21):
        version = ModelVersionFactory(model=MLModelFactory(owner=ml_engineer), number=number)
        PromotionRequestFactory(version=version, requester=ml_engineer)
    for admin_name in ("mlmodel", "modelversion", "promotionrequest"):
        # Measured: 6 (session, user, permissions, the page's rows), whatever the number of rows.
        with django_assert_num_queries(5):
            assert officer_client.get(reverse(f"admin:models_registry_{admin_name}_changelist")).status_code == 200


def test_compliance_officers_group_holds_the_decide_permission(compliance_officer):
    assert compliance_officer.groups.filter(name=Role.COMPLIANCE_OFFICER).exists()
    assert compliance_officer.has_perm("models_registry.decide_promotionrequest")


def test_the_approval_page_names_the_models_owner_beside_the_requester(officer_client, ml_engineer, other_ml_engineer):
    version = ModelVersionFactory(model__name="credit", model__owner=ml_engineer, number=1)
    by_owner = PromotionRequestFactory(version=version, requester=ml_engineer, target_stage=Stage.STAGING)
    # Written behind the platform's back (the request service refuses a non-owner): the page must still say so.
    by_stranger = PromotionRequestFactory(version=version, requester=other_ml_engineer)

    page = choose_action(officer_client, "approve_requests", by_owner, by_stranger).content.decode()

    assert page.count(ml_engineer.username) >= 3  # requester of one, owner on both rows
    assert page.count("The requester is neither the model's owner nor in its team.") == 1


def test_a_promotion_requests_own_page_shows_the_gates_now_and_decides_there(
    officer_client, compliance_officer, pending
):
    page_url = reverse("admin:models_registry_promotionrequest_change", args=[pending.pk])

    page = officer_client.get(page_url).content.decode()
    assert 'id="gates-now"' in page and "evaluation_metrics" in page and "model_card" in page
    assert 'id="approve"' in page and 'id="reject"' in page

    decide_url = reverse("admin:models_registry_promotionrequest_decide", args=[pending.pk])
    refused = officer_client.post(decide_url, {"decision": "approve", "reason": ""})
    pending.refresh_from_db()
    assert refused.status_code == 302 and pending.status == PromotionStatus.PENDING

    officer_client.post(decide_url, {"decision": "approve", "reason": "Gates pass; card complete."})
    pending.refresh_from_db()
    assert (pending.status, pending.decided_by, pending.decision_reason) == (
        PromotionStatus.APPROVED,
        compliance_officer,
        "Gates pass; card complete.",
    )
    assert 'id="approve"' not in officer_client.get(page_url).content.decode()


def test_only_people_who_decide_promotions_are_offered_the_decision_on_the_page(client, admin_user, pending):
    engineer_staff = UserFactory(username="sam_staff", roles=[Role.ML_ENGINEER])
    engineer_staff.is_staff = True
    engineer_staff.save(update_fields=["is_staff"])
    engineer_staff.user_permissions.add(Permission.objects.get(codename="view_promotionrequest"))
    client.force_login(engineer_staff)

    page = client.get(reverse("admin:models_registry_promotionrequest_change", args=[pending.pk]))
    posted = client.post(
        reverse("admin:models_registry_promotionrequest_decide", args=[pending.pk]),
        {"decision": "approve", "reason": "Sneaky."},
    )

    assert 'id="approve"' not in page.content.decode()
    assert posted.status_code == 403
    pending.refresh_from_db()
    assert pending.status == PromotionStatus.PENDING


def test_an_administrator_overrides_a_failing_gate_from_the_requests_page(client, admin_user, pending, monkeypatch):
    monkeypatch.setitem(gates._GATES, "bias_audit", lambda v, t: GateResult("bias_audit", False, "No passing audit."))
    client.force_login(admin_user)
    page_url = reverse("admin:models_registry_promotionrequest_change", args=[pending.pk])

    assert 'id="override-form"' in client.get(page_url).content.decode()
    client.post(
        reverse("admin:models_registry_promotionrequest_override_gate", args=[pending.pk]),
        {"gate": "bias_audit", "reason": "Pilot approved by the board."},
    )

    pending.refresh_from_db()
    assert [(o["gate"], o["by"], o["reason"]) for o in pending.gate_overrides] == [
        ("bias_audit", "alice_admin", "Pilot approved by the board.")
    ]
