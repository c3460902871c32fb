"""The auto-decide threshold recommendation wired into the product: its inputs read from the cases, the API, the
console page with its reliability chart, and "apply" as a compliance officer's reasoned change of the routing policy.
"""

import itertools
import json
import random
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audits.models import DecisionEvent
from audits.selectors.threshold_inputs import threshold_inputs
from audits.selectors.threshold_recommendation import threshold_recommendation_for
from audits.thresholds import threshold_recommend
from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import AssignmentStatus, DecisionSource, Route
from reviews.models import Decision, Prediction, RoutingPolicy
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory
from tests.platform.test_csp import csp_directives, refused_markup
from tests.reviews.factories import (
    AssignmentFactory,
    PredictionFactory,
    ReviewFactory,
    ReviewTaskFactory,
    RoutingPolicyFactory,
)

_sequence = itertools.count()
QUEUE_AT_090 = "at 0.90 the queue grows by about 14 cases a day beyond what the team decides"


def cases_make(
    version,
    *,
    count: int,
    confidence: float | None,
    wrong: int = 0,
    source: str | None = DecisionSource.CONSENSUS,
    outcome: str = "",
    predicted: str = "approve",
    is_gold: bool = False,
    age: timedelta = timedelta(hours=1),
) -> list[Prediction]:
    """``count`` cases of one confidence, the first ``wrong`` of them decided "deny" by a human (the model said
    ``predicted``); ``source`` None leaves them undecided. Written in bulk."""
    created = timezone.now() - age
    predictions = Prediction.objects.bulk_create(
        PredictionFactory.build(
            version=version,
            model=version.model,
            external_id=f"threshold-case-{next(_sequence)}",
            predicted_label=predicted,
            confidence=confidence,
            route=Route.AUTO if source == DecisionSource.AUTO else Route.REVIEW,
            is_qa_sample=source != DecisionSource.AUTO and confidence is not None and confidence >= 0.8,
            is_gold=is_gold,
            outcome_label=outcome,
            submitted_by=version.model.owner,
            created_at=created,
        )
        for _ in range(count)
    )
    if source is not None:
        Decision.objects.bulk_create(
            Decision(
                prediction=prediction,
                model=version.model,
                final_label="deny" if index < wrong else predicted,
                source=source,
            )
            for index, prediction in enumerate(predictions)
        )
    return predictions


def reviews_make(predictions, reviewers, *, age: timedelta = timedelta(hours=2)) -> None:
    """Each reviewer's submitted review of each case, ``age`` ago."""
    for prediction in predictions:
        task = ReviewTaskFactory(prediction=prediction)
        for reviewer in reviewers:
            ReviewFactory(
                assignment=AssignmentFactory(task=task, reviewer=reviewer, status=AssignmentStatus.SUBMITTED),
                created_at=timezone.now() - age,
            )


@pytest.fixture
def owner(db):
    return UserFactory(username="owen_owner", roles=[Role.ML_ENGINEER])


@pytest.fixture
def version(owner):
    return ModelVersionFactory(stage=Stage.PRODUCTION, model__owner=owner, model__name="credit", created_by=owner)


@pytest.fixture
def policy(version):
    return RoutingPolicyFactory(model=version.model, auto_decide_threshold=0.8, qa_sample_rate=0.05)


@pytest.fixture
def recommendable(version, policy, reviewer_a, reviewer_b):
    """300 cases at 0.95 without an error and 200 at 0.89 with 20: nothing below 0.90 stays under 2% at 95%.

    500 cases in two weeks, 35.7 a day; 14 of them reviewed twice in that time: 2 reviews a day, 2 per case (the
    medium tier's default). At 0.90, 60% are decided automatically and 43% of the intake goes to review (the QA
    sample of 5% included): 30.7 reviews a day needed against 2, so the queue grows by 14.4 cases a day.
    """
    confident = cases_make(version, count=300, confidence=0.95)
    cases_make(version, count=200, confidence=0.89, wrong=20)
    reviews_make(confident[:14], [reviewer_a, reviewer_b])
    return version.model


@pytest.fixture
def officer_client(client, compliance_officer):
    client.force_login(compliance_officer)
    return client


def page_url(model, **query) -> str:
    url = reverse("admin:threshold_recommendation", args=[model.pk])
    return url + ("?" + "&".join(f"{name}={value}" for name, value in query.items()) if query else "")


def api_url(model) -> str:
    return reverse("api-v1:model-threshold-recommendation", args=[model.name])


class TestInputs:
    def test_labelled_cases_are_the_human_decided_ones_and_the_outcome_beats_the_final_label(self, version, policy):
        cases_make(version, count=3, confidence=0.91, wrong=1)  # consensus: one overridden
        cases_make(version, count=2, confidence=0.72, wrong=2, source=DecisionSource.ADJUDICATION)
        # The reviewers agreed with the model, the world did not; and the other way round.
        cases_make(version, count=1, confidence=0.83, outcome="deny")
        cases_make(version, count=1, confidence=0.84, wrong=1, outcome="approve")
        # Not labelled: decided automatically (even with an outcome), undecided, gold, without a confidence, or
        # out of the window.
        cases_make(version, count=4, confidence=0.97, source=DecisionSource.AUTO, outcome="deny")
        cases_make(version, count=2, confidence=0.66, source=None)
        cases_make(version, count=2, confidence=0.9, wrong=2, is_gold=True)
        cases_make(version, count=1, confidence=None, wrong=1)
        cases_make(version, count=2, confidence=0.9, wrong=2, age=timedelta(days=120))
        cases_make(ModelVersionFactory(stage=Stage.PRODUCTION), count=2, confidence=0.9, wrong=2)

        inputs = threshold_inputs(model=version.model)

        assert sorted(inputs.labelled) == [
            (0.72, True),
            (0.72, True),
            (0.83, True),
            (0.84, False),
            (0.91, False),
            (0.91, False),
            (0.91, True),
        ]

    def test_a_label_with_its_own_threshold_is_left_out_of_the_error_rates_and_keeps_its_routing(self, version, policy):
        policy.label_thresholds = {"deny": 0.97}
        policy.save()
        cases_make(version, count=3, confidence=0.9, wrong=3, predicted="deny")  # reviewed: below 0.97
        cases_make(version, count=2, confidence=0.98, source=DecisionSource.AUTO, predicted="deny")
        cases_make(version, count=5, confidence=0.85, source=DecisionSource.AUTO)

        inputs = threshold_inputs(model=version.model)
        recommendation = threshold_recommendation_for(model=version.model).recommendation

        assert inputs.labelled == [] and inputs.labels_with_own_threshold == ("deny",)
        # At 0.80: 5 approvals and 2 denials of 10 decided alone; at 0.90 the approvals go to review, the denials
        # still follow their own 0.97.
        assert recommendation.current.automation_rate == pytest.approx(0.7)
        at_090 = next(c for c in recommendation.candidates if c.threshold == 0.9)
        assert at_090.automation_rate == pytest.approx(0.2)

    def test_the_automation_rates_from_counts_equal_those_from_every_confidence(self, version, policy):
        rng = random.Random(7)
        confidences = [round(rng.uniform(0.3, 1.0), 4) for _ in range(120)] + [None] * 5 + [1.0] * 3
        for confidence in confidences:
            cases_make(version, count=1, confidence=confidence, source=None)

        inputs = threshold_inputs(model=version.model)
        arguments = {
            "labelled": [],
            "recent_days": 14,
            "reviewer_capacity_per_day": 10,
            "reviews_per_case": 2,
            "current_threshold": 0.8,
            "qa_sample_rate": 0.05,
        }
        from_counts = threshold_recommend(recent_confidences=inputs.recent_confidences(), **arguments)
        from_rows = threshold_recommend(recent_confidences=confidences, **arguments)

        assert from_counts.current == from_rows.current
        assert [c.automation_rate for c in from_counts.candidates] == [c.automation_rate for c in from_rows.candidates]

    def test_capacity_is_the_reviews_given_on_the_models_real_cases_over_the_last_two_weeks(
        self, version, policy, reviewer_a, reviewer_b, adjudicator
    ):
        cases = cases_make(version, count=12, confidence=0.7)
        reviews_make(cases[:7], [reviewer_a, reviewer_b])  # 14 reviews
        reviews_make(cases[7:9], [reviewer_a], age=timedelta(days=15))  # too old
        reviews_make(cases_make(version, count=2, confidence=0.7, is_gold=True), [reviewer_b])  # gold
        adjudicated = ReviewTaskFactory(prediction=cases[9])
        ReviewFactory(assignment__task=adjudicated, assignment__reviewer=adjudicator, is_adjudication=True)
        corrected = ReviewFactory(
            assignment__task=ReviewTaskFactory(prediction=cases[10]), assignment__reviewer=reviewer_a
        )
        ReviewFactory(
            assignment=corrected.assignment, corrects=corrected, label="deny", correction_reason="Misread the income."
        )

        inputs = threshold_inputs(model=version.model)

        assert inputs.reviews_given == 15  # 14, and the correction in place of the review it corrects
        assert inputs.reviewer_capacity_per_day == pytest.approx(15 / 14)
        assert inputs.reviews_per_case == 2  # the medium risk tier's default

    def test_the_inputs_take_four_queries_whatever_the_number_of_cases(
        self, version, policy, django_assert_num_queries
    ):
        policy.label_thresholds = {"deny": 0.97}
        policy.save()
        cases_make(version, count=50, confidence=0.9, wrong=5)
        cases_make(version, count=50, confidence=0.6, source=None, predicted="deny")

        with django_assert_num_queries(4):
            threshold_inputs(model=version.model)


class TestApi:
    def test_the_defaults_give_the_recommendation_its_operating_points_bands_and_sentences(
        self, recommendable, api_client_for, owner
    ):
        response = api_client_for(owner).get(api_url(recommendable))

        assert response.status_code == 200
        body = response.json()
        assert (body["model"], body["target_error_rate"], body["confidence_level"]) == ("credit", 0.02, 0.95)
        assert (body["current_threshold"], body["recommended_threshold"]) == (0.8, 0.9)
        assert body["current"]["error_rate"] == pytest.approx(20 / 500)
        assert body["recommended"]["automation_rate"] == pytest.approx(0.6)
        assert body["recommended"]["errors"] == 0 and body["recommended"]["n"] == 300
        assert body["recommended"]["error_upper_bound"] == pytest.approx(1 - 0.05 ** (1 / 300))
        assert f"{QUEUE_AT_090} (30.7 reviews needed a day against 2 done)" in body["sentences"]
        bands = {(band["lower"], band["upper"]): band for band in body["bands"]}
        assert bands[(0.85, 0.9)]["n"] == 200 and bands[(0.85, 0.9)]["accuracy"] == pytest.approx(0.9)
        assert body["inputs"]["reviewer_capacity_per_day"] == 2 and body["inputs"]["reviews_per_case"] == 2

    def test_a_stricter_target_or_confidence_recommends_nothing_and_says_why(
        self, recommendable, api_client_for, compliance_officer
    ):
        response = api_client_for(compliance_officer).get(api_url(recommendable), {"target_error": "0.005"})

        body = response.json()
        assert response.status_code == 200 and body["recommended_threshold"] is None
        assert body["recommended"] is None
        assert body["reason"].startswith("no threshold recommended: too few labelled cases (500 at or above 0.50)")
        looser = api_client_for(compliance_officer).get(api_url(recommendable), {"confidence": "0.5"}).json()
        assert looser["confidence_level"] == 0.5 and looser["recommended_threshold"] == 0.9

    @pytest.mark.parametrize(
        ("query", "field", "message"),
        [
            ({"target_error": "two percent"}, "target_error", "A valid number is required."),
            ({"target_error": "0"}, "target_error", "greater than or equal to 0.001"),
            ({"target_error": "nan"}, "target_error", "A valid number is required."),
            ({"confidence": "1"}, "confidence", "less than or equal to 0.999"),
            ({"confidence": "0.2"}, "confidence", "greater than or equal to 0.5"),
            ({"target": "0.02"}, "target", "Unknown field."),
        ],
    )
    def test_a_bad_parameter_is_a_400_naming_it(self, recommendable, api_client_for, owner, query, field, message):
        response = api_client_for(owner).get(api_url(recommendable), query)

        assert response.status_code == 400
        assert message in " ".join(response.json()[field])

    def test_another_teams_model_is_a_404_and_a_reviewer_is_refused(
        self, recommendable, api_client_for, other_ml_engineer, reviewer_a
    ):
        hidden = api_client_for(other_ml_engineer).get(api_url(recommendable), {"target_error": "bad"})
        missing = api_client_for(other_ml_engineer).get(reverse("api-v1:model-threshold-recommendation", args=["nope"]))

        assert (hidden.status_code, missing.status_code) == (404, 404)
        assert hidden.json() == {"detail": "No model named 'credit' that you can access."}
        assert api_client_for(reviewer_a).get(api_url(recommendable)).status_code == 403

    def test_nothing_is_applied_through_the_api(self, recommendable, api_client_for, compliance_officer):
        response = api_client_for(compliance_officer).post(api_url(recommendable), {"reason": "Go."}, format="json")

        assert response.status_code == 405
        assert RoutingPolicy.objects.get(model=recommendable).auto_decide_threshold == 0.8


def page_html(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200
    assert refused_markup(response.content.decode(), csp_directives(response["Content-Security-Policy"])) == []
    return response.content.decode()


def apply(client, model, *, reason="Two weeks of QA samples back it.", expected="0.9", **overrides):
    data = {"target_error": "0.02", "confidence": "0.95", "expected_threshold": expected, "reason": reason}
    return client.post(page_url(model), {**data, **overrides})


@pytest.fixture
def staff_engineer(owner):
    """The model's owner with console access: may read its routing policy, not change it."""
    owner.is_staff = True
    owner.save(update_fields=["is_staff"])
    return owner


class TestPage:
    def test_it_says_the_recommendation_compares_both_thresholds_and_draws_the_reliability_chart(
        self, officer_client, recommendable
    ):
        html = page_html(officer_client, page_url(recommendable))

        assert re.search(r'id="recommendation-reason">0\.90 is the lowest threshold whose 95% upper bound', html)
        assert "At 0.90 the queue grows by about 14 cases a day beyond what the team decides" in html
        row = re.search(r'<tr id="compare-error-rate">.*?</tr>', html, re.S).group(0)
        assert "4%, at most" in row and "0%, at most 0.99% at 95% confidence (0 errors in 300 labelled cases)" in row
        load = re.search(r'<tr id="compare-review-load">.*?</tr>', html, re.S).group(0)
        assert "15.357143 cases a day to review" not in load and "15.4 cases a day to review, 30.7 reviews" in load
        chart = re.search(r'<svg[^>]* id="reliability-\d+".*?</svg>', html, re.S).group(0)
        assert chart.count('<circle class="dot"') == 2 + 1  # two bands and the legend
        assert '<line class="diagonal"' in chart
        assert '<line class="marker marker-current"' in chart and '<line class="marker marker-recommended"' in chart
        assert "confidence 0.85 to 0.90: 200 labelled cases, 20 errors; observed accuracy 90%" in chart
        assert 'rel="stylesheet" href="/static/hitl/thresholds.css"' in html

    def test_a_model_name_is_escaped_in_the_chart(self, officer_client, version, policy):
        version.model.name = "credit<script>"
        version.model.save()
        cases_make(version, count=3, confidence=0.9)

        html = page_html(officer_client, page_url(version.model))

        chart = re.search(r'<svg[^>]* id="reliability-\d+".*?</svg>', html, re.S).group(0)
        assert "<script>" not in chart and "Reliability of credit&lt;script&gt;" in chart

    def test_applying_sets_the_threshold_with_the_reason_in_the_history_and_the_ledger(
        self, officer_client, recommendable, compliance_officer
    ):
        response = apply(officer_client, recommendable)

        assert response.status_code == 302
        assert response["Location"] == page_url(recommendable, target_error="0.02", confidence="0.95")
        policy = RoutingPolicy.objects.get(model=recommendable)
        assert policy.auto_decide_threshold == 0.9
        latest = policy.history.order_by("-history_id").first()
        assert latest.history_user == compliance_officer
        assert latest.history_change_reason.startswith("Two weeks of QA samples back it.\n\n")
        assert (
            "Applied from the threshold recommendation (target error rate 2%, 95% confidence): 0.90 is the lowest "
            "threshold whose 95% upper bound on the error rate of automatic decisions (0.99%; 0 errors in 300 "
            "labelled cases) is under 2%." in latest.history_change_reason
        )
        event = DecisionEvent.objects.filter(event_type="policy.changed").get()
        payload = json.loads(event.payload)
        assert payload["changes"] == {"auto_decide_threshold": {"from": 0.8, "to": 0.9}}
        assert payload["reason"] == latest.history_change_reason
        followed = page_html(officer_client, response["Location"])
        assert "is now 0.90 (it was 0.80)" in followed
        assert 'id="apply-recommendation"' not in followed and 'id="nothing-to-apply"' in followed

    def test_without_a_reason_it_is_a_form_error_and_nothing_changes(self, officer_client, recommendable):
        before = RoutingPolicy.history.count()

        response = apply(officer_client, recommendable, reason="   ")

        assert response.status_code == 200
        assert "Give a reason: every change of a routing policy is recorded with one." in response.content.decode()
        assert RoutingPolicy.objects.get(model=recommendable).auto_decide_threshold == 0.8
        assert RoutingPolicy.history.count() == before
        assert not DecisionEvent.objects.filter(event_type="policy.changed").exists()
        empty = officer_client.post(page_url(recommendable), {})
        assert empty.status_code == 200 and "Give a reason" in empty.content.decode()
        assert RoutingPolicy.objects.get(model=recommendable).auto_decide_threshold == 0.8

    def test_a_recommendation_that_changed_since_the_page_was_read_is_not_applied(self, officer_client, recommendable):
        response = apply(officer_client, recommendable, expected="0.85")

        html = response.content.decode()
        assert response.status_code == 200
        assert "it is now 0.90, not 0.85. Read it again before applying it." in html
        assert '<input type="hidden" name="expected_threshold" value="0.9">' in html
        assert RoutingPolicy.objects.get(model=recommendable).auto_decide_threshold == 0.8

    def test_a_threshold_posted_by_the_client_is_never_the_one_applied(self, officer_client, recommendable):
        apply(officer_client, recommendable, auto_decide_threshold="0.5")

        assert RoutingPolicy.objects.get(model=recommendable).auto_decide_threshold == 0.9

    def test_without_enough_labelled_cases_there_is_nothing_to_apply(self, officer_client, version, policy):
        cases_make(version, count=100, confidence=0.95)

        html = page_html(officer_client, page_url(version.model))
        response = apply(officer_client, version.model)

        assert "No threshold recommended: too few labelled cases (100 at or above 0.50)" in html
        assert 'id="apply-recommendation"' not in html
        assert "there is nothing to apply" in response.content.decode()
        assert RoutingPolicy.objects.get(model=version.model).auto_decide_threshold == 0.8

    def test_bad_parameters_are_form_errors(self, officer_client, recommendable):
        html = page_html(officer_client, page_url(recommendable, target_error="2", confidence="x"))

        assert "Ensure this value is less than or equal to 0.5." in html and "Enter a number." in html
        assert 'id="recommendation"' not in html

    def test_the_parameters_asked_are_the_ones_shown(self, officer_client, recommendable):
        html = page_html(officer_client, page_url(recommendable, target_error="0.005"))

        assert "No threshold recommended" in html
        assert 'id="reliability-' in html and 'value="0.005"' in html

    def test_who_may_read_but_not_change_routing_gets_no_form_and_a_403_on_post(
        self, client, recommendable, staff_engineer
    ):
        client.force_login(staff_engineer)

        html = page_html(client, page_url(recommendable))
        response = apply(client, recommendable)

        assert QUEUE_AT_090[3:] in html and 'id="apply-recommendation"' not in html
        assert response.status_code == 403
        assert RoutingPolicy.objects.get(model=recommendable).auto_decide_threshold == 0.8

    def test_another_teams_model_is_a_404_in_the_console_too(self, client, recommendable):
        outsider = UserFactory(username="sam_staff", roles=[Role.ML_ENGINEER])
        outsider.is_staff = True
        outsider.save(update_fields=["is_staff"])
        client.force_login(outsider)

        assert client.get(page_url(recommendable)).status_code == 404
