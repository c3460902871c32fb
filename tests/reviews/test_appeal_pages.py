"""The appeal pages: an adjudicator finds a decided case and reverses its final decision, with a reason."""

import json

import pytest
from django.urls import reverse

from audits.models import DecisionEvent
from reviews.choices import DecisionSource
from reviews.models import Decision
from tests.reviews.factories import PredictionFactory, ReviewTaskFactory, adjudicated_split_case

SENSITIVE = {"sex": "SENSITIVE-SEX-VALUE", "nationality": "SENSITIVE-NATIONALITY-VALUE"}


@pytest.fixture
def decided_case(db, reviewer_a, reviewer_b, adjudicator):
    """A case two reviewers split on, adjudicated as "deny", whose sensitive attributes must never be shown."""
    prediction = PredictionFactory(
        version__model__labels=["approve", "deny", "refer"],
        version__model__sensitive_attributes=["sex", "nationality"],
        external_id="loan-2024-0042",
        features={"credit_amount": 9800.0, "duration": 48, "nationality": "SENSITIVE-NATIONALITY-VALUE"},
        sensitive_attributes=dict(SENSITIVE),
        route_reasons=["confidence 0.55 is below the 0.80 auto-decide threshold", "credit_amount > 8000: review"],
        confidence=0.55,
    )
    _, decision = adjudicated_split_case(
        prediction,
        reviewers=(reviewer_a, reviewer_b),
        adjudicator=adjudicator,
        rationales=(
            "RATIONALE-APPROVE: stable income for six years.",
            "RATIONALE-DENY: loan is five times monthly income.",
        ),
    )
    return prediction, decision


def login(client, user):
    client.force_login(user)
    return client


def search(client, **params):
    return client.get(reverse("reviews:appeals"), params)


def appeal(client, decision, **data):
    return client.post(reverse("reviews:appeal", args=[decision.pk]), data)


def reversals() -> int:
    return DecisionEvent.objects.filter(event_type="decision.reversed").count()


class TestAccess:
    def test_reviewers_who_are_not_adjudicators_get_a_403(self, client, decided_case, reviewer_a):
        _, decision = decided_case
        login(client, reviewer_a)

        assert client.get(reverse("reviews:appeals")).status_code == 403
        assert client.get(reverse("reviews:appeal", args=[decision.pk])).status_code == 403
        assert appeal(client, decision, final_label="approve", reason="Because").status_code == 403
        decision.refresh_from_db()
        assert decision.final_label == "deny"
        assert reversals() == 0

    @pytest.mark.parametrize("persona", ["ml_engineer", "compliance_officer", "outsider"])
    def test_people_without_a_reviewer_role_get_a_403(self, client, decided_case, persona, request):
        _, decision = decided_case
        login(client, request.getfixturevalue(persona))

        assert client.get(reverse("reviews:appeals")).status_code == 403
        assert client.get(reverse("reviews:appeal", args=[decision.pk])).status_code == 403

    def test_anonymous_visitors_are_sent_to_the_login_page(self, client, db):
        response = client.get(reverse("reviews:appeals"))
        assert response.status_code == 302 and response.url.startswith(reverse("login"))

    def test_only_adjudicators_see_the_appeals_link(self, client, reviewer_a, adjudicator):
        link = f'href="{reverse("reviews:appeals")}"'
        assert link not in login(client, reviewer_a).get(reverse("reviews:queue")).content.decode()
        assert link in login(client, adjudicator).get(reverse("reviews:queue")).content.decode()

    def test_an_unknown_decision_id_in_the_address_is_a_404(self, client, adjudicator):
        assert login(client, adjudicator).get(reverse("reviews:appeal", args=[999999])).status_code == 404


class TestSearch:
    def test_an_adjudicator_finds_a_case_by_model_and_external_id(self, client, decided_case, adjudicator):
        prediction, decision = decided_case

        response = search(login(client, adjudicator), model=prediction.model_id, external_id="loan-2024-0042")

        assert response.status_code == 200
        html = response.content.decode()
        assert 'id="final-decision"' in html and "<strong>deny</strong>" in html
        assert "adjudication by ada_adjudicator" in html
        assert "credit_amount &gt; 8000: review" in html
        assert "RATIONALE-APPROVE" in html and "RATIONALE-DENY" in html
        assert "rita_reviewer" in html and "ravi_reviewer" in html
        assert reverse("reviews:appeal", args=[decision.pk]) in html

    def test_an_adjudicator_finds_a_case_by_decision_id(self, client, decided_case, adjudicator):
        _, decision = decided_case

        html = search(login(client, adjudicator), decision=decision.pk).content.decode()

        assert "loan-2024-0042" in html and "RATIONALE-DENY" in html

    def test_an_unknown_case_is_a_form_error(self, client, decided_case, adjudicator):
        prediction, _ = decided_case
        login(client, adjudicator)

        unknown = search(client, model=prediction.model_id, external_id="no-such-case")
        assert unknown.status_code == 200
        assert f"{prediction.model.name} has no case with the external id &#x27;no-such-case&#x27;." in (
            unknown.content.decode()
        )
        assert unknown.context["case"] is None

        missing_id = search(client, decision=999999)
        assert missing_id.status_code == 200
        assert "No decision has the id 999999." in missing_id.content.decode()

    def test_a_case_without_a_final_decision_is_a_form_error(self, client, adjudicator):
        waiting = ReviewTaskFactory(prediction__external_id="loan-waiting").prediction
        response = search(login(client, adjudicator), model=waiting.model_id, external_id="loan-waiting")

        assert response.status_code == 200
        assert "has no final decision yet: there is nothing to appeal." in response.content.decode()

    def test_a_search_needs_a_model_and_a_case_id_or_a_decision_id(self, client, decided_case, adjudicator):
        prediction, _ = decided_case
        login(client, adjudicator)

        assert "Choose the model the case id belongs to." in search(client, external_id="x").content.decode()
        assert "Give the case id" in search(client, model=prediction.model_id).content.decode()

    def test_sensitive_attributes_never_appear_on_the_pages(self, client, decided_case, adjudicator):
        prediction, decision = decided_case
        login(client, adjudicator)

        pages = [
            search(client, model=prediction.model_id, external_id="loan-2024-0042"),
            client.get(reverse("reviews:appeal", args=[decision.pk])),
            appeal(client, decision, final_label="approve", reason=""),
        ]

        for page in pages:
            html = page.content.decode()
            assert "credit_amount" in html
            for value in SENSITIVE.values():
                assert value not in html
            assert "nationality" not in html

    def test_the_case_is_read_in_eight_queries(self, client, decided_case, adjudicator, django_assert_num_queries):
        prediction, _ = decided_case
        login(client, adjudicator)
        search(client, model=prediction.model_id, external_id="loan-2024-0042")

        with django_assert_num_queries(8):
            search(client, model=prediction.model_id, external_id="loan-2024-0042")


class TestReversal:
    def test_an_appeal_reason_over_ten_thousand_characters_is_a_form_error(self, client, decided_case, adjudicator):
        _, decision = decided_case
        login(client, adjudicator)

        response = appeal(client, decision, final_label="approve", reason="z" * 10_001)

        assert "at most 10000 characters" in response.content.decode()
        decision.refresh_from_db()
        assert decision.final_label == "deny"

    def test_an_adjudicator_finds_a_case_and_reverses_its_decision(self, client, decided_case, adjudicator):
        prediction, decision = decided_case
        login(client, adjudicator)
        found = search(client, model=prediction.model_id, external_id="loan-2024-0042")
        appeal_url = reverse("reviews:appeal", args=[decision.pk])
        assert appeal_url in found.content.decode()

        response = client.post(appeal_url, {"final_label": "approve", "reason": "Applicant proved a second income"})

        assert response.status_code == 302
        assert response.url == f"{reverse('reviews:appeals')}?decision={decision.pk}"
        decision.refresh_from_db()
        assert (decision.final_label, decision.source, decision.decided_by) == (
            "approve",
            DecisionSource.ADJUDICATION,
            adjudicator,
        )
        original, reversal = decision.history.order_by("history_date")
        assert original.final_label == "deny"
        assert (reversal.final_label, reversal.history_user, reversal.history_change_reason) == (
            "approve",
            adjudicator,
            "Reversed on appeal: Applicant proved a second income",
        )
        event = DecisionEvent.objects.get(event_type="decision.reversed")
        assert event.actor_label == adjudicator.username
        payload = json.loads(event.payload)
        assert (payload["previous"]["label"], payload["label"]) == ("deny", "approve")
        assert payload["reason"] == "Applicant proved a second income"

        landing = client.get(response.url).content.decode()
        assert "reversed on appeal" in landing and "The original decision stays in the case" in landing
        assert 'id="decision-trail"' in landing

    def test_a_missing_reason_is_a_form_error_and_nothing_changes(self, client, decided_case, adjudicator):
        _, decision = decided_case

        response = appeal(login(client, adjudicator), decision, final_label="approve", reason="   ")

        assert response.status_code == 200
        assert "Give a reason: it is recorded in the history and the ledger." in response.content.decode()
        decision.refresh_from_db()
        assert decision.final_label == "deny"
        assert decision.history.count() == 1
        assert reversals() == 0

    def test_the_current_label_is_a_form_error_and_nothing_changes(self, client, decided_case, adjudicator):
        _, decision = decided_case

        response = appeal(login(client, adjudicator), decision, final_label="deny", reason="Upheld")

        assert response.status_code == 200
        assert "That is already the final label" in response.content.decode()
        assert decision.history.count() == 1
        assert reversals() == 0

    def test_an_unknown_label_is_a_form_error(self, client, decided_case, adjudicator):
        _, decision = decided_case

        response = appeal(login(client, adjudicator), decision, final_label="maybe", reason="Because")

        assert response.status_code == 200
        assert response.context["form"].errors["final_label"]
        assert reversals() == 0

    def test_double_submit_is_harmless(self, client, decided_case, adjudicator):
        _, decision = decided_case
        login(client, adjudicator)

        first = appeal(client, decision, final_label="approve", reason="New evidence")
        second = appeal(client, decision, final_label="approve", reason="New evidence")

        assert first.status_code == 302
        assert second.status_code == 200
        assert "That is already the final label" in second.content.decode()
        assert Decision.objects.get(pk=decision.pk).final_label == "approve"
        assert decision.history.count() == 2
        assert reversals() == 1
