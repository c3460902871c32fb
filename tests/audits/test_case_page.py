"""The case page: one prediction's whole trail, for a compliance officer answering a regulator."""

import pytest
from django.urls import reverse

from audits.models import DecisionEvent
from audits.selectors.cases import case_trail
from models_registry.choices import Stage
from reviews.models import Prediction
from reviews.services.intake import predictions_ingest
from reviews.services.policies import routing_policy_get_or_create_default, routing_policy_update
from tests.audits.conftest import ledger_tampering
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory


def test_the_case_page_shows_the_whole_trail_of_a_reviewed_case(client, compliance_officer, reviewed_case):
    prediction, _, decision = reviewed_case
    client.force_login(compliance_officer)

    response = client.get(reverse("admin:case", args=[prediction.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    # Input, model version and routing reasons.
    assert "9800.0" in html and "&quot;duration&quot;: 48" in html
    assert f"{prediction.model.name} v{prediction.version.number}" in html
    assert "credit_amount &gt; 8000: review" in html
    # Every assignment and review with its rationale, the adjudication and the final decision.
    assert "rita_reviewer" in html and "ravi_reviewer" in html
    assert "Stable income for six years." in html
    assert "Loan is five times the monthly income." in html
    assert "<strong>deny</strong> by adjudication (ada_adjudicator)" in html
    # The webhook sent, each history change with its reason, and the verified ledger events.
    assert "https://bank.example.org/hook" in html
    assert "Adjudicated: the instalment exceeds 40% of income" in html
    event = DecisionEvent.objects.get(object_type="reviews.decision", object_id=str(decision.pk))
    assert event.hash in html
    assert "all verified" in html
    # Sensitive attributes stay out of the console.
    assert "female" not in html


def test_the_trail_collects_history_rows_of_every_record_of_the_case(reviewed_case, adjudicator):
    prediction, task, decision = reviewed_case

    trail = case_trail(prediction_id=prediction.pk)

    recorded = {(change.what, change.object_id) for change in trail.history}
    assert ("prediction", prediction.pk) in recorded
    assert ("review task", task.pk) in recorded
    assert ("decision", decision.pk) in recorded
    assert sum(1 for what, _ in recorded if what == "review") == 2
    assert sum(1 for what, _ in recorded if what == "assignment") == 2
    made = next(change for change in trail.history if change.what == "decision")
    assert (made.user, made.reason) == (adjudicator.username, "Adjudicated: the instalment exceeds 40% of income")
    assert [check.event.event_type for check in trail.ledger] == ["decision.made"]
    assert trail.ledger_intact


def test_the_case_page_flags_a_ledger_event_altered_after_the_fact(client, compliance_officer, reviewed_case):
    prediction, _, decision = reviewed_case
    event = DecisionEvent.objects.get(object_type="reviews.decision", object_id=str(decision.pk))
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=event.pk).update(payload=event.payload.replace('"deny"', '"approve"'))
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:case", args=[prediction.pk])).content.decode()

    assert "VERIFICATION FAILED" in html
    assert "content altered" in html


def test_the_case_page_flags_a_ledger_event_re_sealed_without_the_deployment_key(
    client, compliance_officer, reviewed_case
):
    prediction, _, decision = reviewed_case
    with ledger_tampering():
        DecisionEvent.objects.filter(object_type="reviews.decision", object_id=str(decision.pk)).update(seal="0" * 64)
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:case", args=[prediction.pk])).content.decode()

    assert "VERIFICATION FAILED" in html
    assert "forged or re-sealed" in html
    assert "content altered" not in html


def test_the_case_page_runs_a_fixed_number_of_queries(
    client, compliance_officer, reviewed_case, django_assert_num_queries
):
    prediction, _, _ = reviewed_case
    client.force_login(compliance_officer)

    with django_assert_num_queries(13):
        assert client.get(reverse("admin:case", args=[prediction.pk])).status_code == 200


def test_an_unknown_case_is_a_404_and_outsiders_are_kept_out(client, compliance_officer, outsider, reviewed_case):
    prediction, _, _ = reviewed_case
    client.force_login(compliance_officer)
    missing = Prediction.objects.order_by("-pk").first().pk + 1
    assert client.get(reverse("admin:case", args=[missing])).status_code == 404

    client.force_login(outsider)
    response = client.get(reverse("admin:case", args=[prediction.pk]))
    assert response.status_code == 302  # not staff: sent to the admin login
    assert "9800.0" not in response.content.decode()


@pytest.fixture
def versioned_case(db, ml_engineer, compliance_officer):
    """A case routed through intake after the policy was made stricter: it records that exact version."""
    model = MLModelFactory(name="credit-scoring", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    policy = routing_policy_get_or_create_default(model=model)
    routing_policy_update(
        policy=policy, changes={"auto_decide_threshold": 0.95}, actor=compliance_officer, reason="Stricter after drift."
    )
    predictions_ingest(
        model=model,
        items=[
            {
                "external_id": "loan-1",
                "features": {"credit_amount": 1.0, "duration": 2, "age": 30},
                "label": "approve",
                "confidence": 0.9,
            }
        ],
        actor=ml_engineer,
    )
    return Prediction.objects.get(model=model, external_id="loan-1")


def test_the_case_page_names_the_exact_policy_version_the_case_was_routed_under(
    client, compliance_officer, versioned_case
):
    prediction = versioned_case
    version = prediction.model.routing_policy.history.order_by("-history_id").first()
    assert prediction.policy_history_id == version.history_id
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:case", args=[prediction.pk])).content.decode()

    link = reverse("admin:reviews_routingpolicy_simple_history", args=[version.id, version.history_id])
    assert f'<a href="{link}">version {version.history_id}</a>' in html
    assert "by carla_compliance" in html and "Stricter after drift." in html
    assert f'<code class="hitl-sha" title="{prediction.policy_sha256}">{prediction.policy_sha256[:12]}…</code>' in html
    assert "settings hash as recorded" in html
    assert "<li>Decided automatically at a confidence of 0.95 or more.</li>" in html
    # The link opens that version of the policy in the console.
    assert client.get(link).status_code == 200


def test_the_case_page_says_when_the_recorded_policy_version_no_longer_hashes_as_recorded(
    client, compliance_officer, versioned_case
):
    Prediction.objects.filter(pk=versioned_case.pk).update(policy_sha256="f" * 64)
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:case", args=[versioned_case.pk])).content.decode()

    assert "not what the case recorded" in html
    assert "settings hash as recorded" not in html


def test_a_case_routed_before_policies_were_versioned_says_so(client, compliance_officer, reviewed_case):
    prediction, _, _ = reviewed_case
    assert prediction.policy_history_id is None
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:case", args=[prediction.pk])).content.decode()

    assert "Routed before routing policies were versioned" in html
    assert 'id="policy-in-words"' not in html
    assert case_trail(prediction_id=prediction.pk).policy_version is None


def test_the_case_page_of_a_versioned_case_runs_a_fixed_number_of_queries(
    client, compliance_officer, versioned_case, django_assert_num_queries
):
    client.force_login(compliance_officer)

    with django_assert_num_queries(13):
        assert client.get(reverse("admin:case", args=[versioned_case.pk])).status_code == 200
