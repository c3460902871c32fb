"""What a reviewer reads on the case pages: guidelines as Markdown, features as the schema names them, one case
name everywhere, their own answer after submitting, "My cases", and the question asked of a too-fast review."""

from datetime import timedelta

import pytest
from django.urls import resolve, reverse
from django.utils import timezone

from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.agreement import FAST_REVIEW_SECONDS, fast_review_counts, is_fast_review
from reviews.choices import AssignmentStatus, DecisionSource, TaskStatus
from reviews.models import Assignment, Review
from reviews.selectors.my_cases import reviewer_cases
from reviews.selectors.reviewer_stats import agreement_statistics
from reviews.services.appeals import decision_reverse_on_appeal
from reviews.services.assignments import assignment_claim_next
from reviews.services.decisions import decision_record
from reviews.services.gold import gold_case_create
from reviews.services.reviewing import review_submit
from tests.factories import UserFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory
from tests.reviews.factories import AssignmentFactory, ReviewFactory, ReviewTaskFactory, RoutingPolicyFactory

FEATURE_SCHEMA = {
    "type": "object",
    "properties": {
        "credit_amount": {
            "type": "number",
            "title": "Loan amount",
            "description": "What the applicant asks to borrow.",
            "x-unit": "DM",
        },
        "duration": {"type": "integer", "title": "Duration", "unit": "months"},
        "age": {"type": "integer"},
    },
}
GUIDELINES = (
    "## Deny\n\nDeny when instalments exceed **40%** of income; see [the policy](https://intranet.example/p).\n\n"
    "[Do not click](javascript:alert(1)) <script>alert('guidelines')</script>"
)


@pytest.fixture
def model(db):
    return MLModelFactory(labels=["approve", "deny"], feature_schema=FEATURE_SCHEMA, review_guidelines=GUIDELINES)


@pytest.fixture
def version(model):
    return ModelVersionFactory(model=model, stage=Stage.PRODUCTION)


def case(version, external_id: str, **fields):
    return ReviewTaskFactory(prediction__version=version, prediction__external_id=external_id, **fields)


def claim(client, user, *, seconds_ago: int = 60) -> Assignment:
    """``user`` claims the next case through the page, as if they had been reading it for ``seconds_ago``."""
    client.force_login(user)
    response = client.post(reverse("reviews:next"))
    assignment = Assignment.objects.get(pk=resolve(response.url).kwargs["pk"])
    Assignment.objects.filter(pk=assignment.pk).update(claimed_at=timezone.now() - timedelta(seconds=seconds_ago))
    return assignment


def form_url(assignment: Assignment) -> str:
    return reverse("reviews:review", args=[assignment.pk])


def reviewed(task, reviewer, label: str, rationale: str = "Read it.") -> Review:
    assignment = AssignmentFactory(task=task, reviewer=reviewer, status=AssignmentStatus.SUBMITTED)
    assignment.finished_at = timezone.now()
    assignment.save(update_fields=["finished_at"])
    return ReviewFactory(assignment=assignment, label=label, rationale=rationale)


class TestGuidelines:
    def test_the_review_form_renders_the_guidelines_as_markdown_without_their_script(self, client, version, reviewer_a):
        case(version, "application-00136")
        html = client.get(form_url(claim(client, reviewer_a))).content.decode()

        assert "<strong>40%</strong>" in html and "**40%**" not in html
        assert "<h4>Deny</h4>" in html
        assert '<a href="https://intranet.example/p" rel="noopener noreferrer nofollow">the policy</a>' in html
        # The script link stays as the text the writer typed: not a link.
        assert 'href="javascript' not in html and "[Do not click](javascript:alert(1))" in html
        assert "<script>alert('guidelines')</script>" not in html
        assert "&lt;script&gt;" in html

    def test_the_adjudication_form_renders_them_too(self, client, version, adjudicator):
        task = case(version, "application-00200", status=TaskStatus.ESCALATED)
        client.force_login(adjudicator)

        html = client.get(reverse("reviews:adjudicate", args=[task.pk])).content.decode()

        assert "<strong>40%</strong>" in html and "<script>alert" not in html


class TestFeatures:
    def test_each_feature_shows_its_schema_title_unit_and_description_and_keeps_its_key(
        self, client, version, reviewer_a
    ):
        case(version, "application-00136", prediction__features={"credit_amount": 4200.0, "duration": 24, "age": 41})
        html = client.get(form_url(claim(client, reviewer_a))).content.decode()

        assert '<span class="feature-title">Loan amount</span> <code class="feature-key">credit_amount</code>' in html
        assert '4,200 <span class="feature-unit">DM</span>' in html
        assert "What the applicant asks to borrow." in html
        assert '<span class="feature-title">Duration</span>' in html and '24 <span class="feature-unit">months' in html
        # A feature the schema does not describe shows its key alone.
        assert "<dt>age</dt>" in html

    def test_a_model_without_a_schema_shows_the_keys(self, client, reviewer_a):
        version = ModelVersionFactory(model=MLModelFactory(feature_schema={}), stage=Stage.PRODUCTION)
        case(version, "application-00001")
        html = client.get(form_url(claim(client, reviewer_a))).content.decode()

        assert "<dt>credit_amount</dt>" in html and "feature-title" not in html


class TestCaseName:
    def test_every_reviewer_page_names_the_case_by_its_external_id_and_our_id(
        self, client, version, reviewer_a, adjudicator
    ):
        task = case(version, "application-00136")
        name = f"application-00136 (#{task.prediction_id})"
        assignment = claim(client, reviewer_a)

        assert name in client.get(reverse("reviews:queue")).content.decode()
        assert f'<h1 id="case-title">{name} ' in client.get(form_url(assignment)).content.decode()

        escalated = case(version, "application-00777", status=TaskStatus.ESCALATED)
        client.force_login(adjudicator)
        listed = client.get(reverse("reviews:adjudication")).content.decode()
        assert f">application-00777 (#{escalated.prediction_id})</a>" in listed
        assert f"Case {escalated.pk}" not in listed

    def test_a_gold_case_carries_the_name_of_the_real_case_it_copies(
        self, client, version, reviewer_a, compliance_officer
    ):
        source = case(version, "application-00042", status=TaskStatus.DECIDED).prediction
        RoutingPolicyFactory(model=version.model, gold_rate=1.0)
        gold = gold_case_create(source=source, gold_label="deny", actor=compliance_officer, reason="Known outcome")
        assignment = claim(client, reviewer_a)
        assert assignment.task_id == gold.pk

        html = client.get(form_url(assignment)).content.decode()
        client.post(form_url(assignment), {"label": "deny", "rationale": "Too large."})
        mine = client.get(reverse("reviews:my_cases")).content.decode()

        for page in (html, mine):
            assert f"application-00042 (#{gold.prediction_id})" in page
            assert "gold" not in page.lower()


class TestSubmitted:
    def test_after_submitting_the_page_shows_the_case_and_my_answer_but_nobody_elses(
        self, client, version, reviewer_a, reviewer_b
    ):
        task = case(version, "application-00136", reviews_required=3)
        reviewed(task, reviewer_b, "approve", "OTHER-REVIEWER-RATIONALE")
        task.slots_taken = 1
        task.save(update_fields=["slots_taken"])
        assignment = claim(client, reviewer_a, seconds_ago=42)

        response = client.post(form_url(assignment), {"label": "deny", "rationale": "MY-RATIONALE"}, follow=True)

        html = response.content.decode()
        assert response.redirect_chain[-1][0] == form_url(assignment)
        assert "Review recorded." in html
        assert f'<h1 id="case-title">application-00136 (#{task.prediction_id})' in html
        assert "Loan amount" in html and "<strong>40%</strong>" in html
        assert 'id="own-label">deny<' in html and "MY-RATIONALE" in html
        assert "OTHER-REVIEWER-RATIONALE" not in html
        assert 'id="next-form"' in html


class TestTimeFromClaim:
    def test_the_recorded_time_is_measured_from_the_claim_not_taken_from_the_page(self, client, version, reviewer_a):
        case(version, "application-00136")
        assignment = claim(client, reviewer_a, seconds_ago=95)

        client.post(form_url(assignment), {"label": "deny", "rationale": "x", "time_spent_seconds": "9000"})

        assert 95 <= Review.objects.get().time_spent_seconds <= 100

    def test_the_service_measures_it_for_every_caller(self, version, reviewer_a):
        case(version, "application-00136")
        assignment = assignment_claim_next(reviewer=reviewer_a)
        Assignment.objects.filter(pk=assignment.pk).update(claimed_at=timezone.now() - timedelta(minutes=4))

        result = review_submit(assignment_id=assignment.pk, reviewer=reviewer_a, label="deny", rationale="x")

        assert 240 <= result.review.time_spent_seconds <= 245


class TestFastReview:
    def test_a_review_in_under_three_seconds_of_a_case_with_three_features_asks_first(
        self, client, version, reviewer_a
    ):
        case(version, "application-00136")
        assignment = claim(client, reviewer_a, seconds_ago=1)

        response = client.post(form_url(assignment), {"label": "deny", "rationale": "Looks fine."})

        html = response.content.decode()
        assert response.status_code == 200
        assert "You took 1 s on a case with 3 features; are you sure?" in html
        assert 'id="id_confirm_fast"' in html and "Looks fine." in html
        assert not Review.objects.exists()
        assert Assignment.objects.get().status == AssignmentStatus.CLAIMED

    def test_confirming_saves_the_review(self, client, version, reviewer_a):
        case(version, "application-00136")
        assignment = claim(client, reviewer_a, seconds_ago=0)

        response = client.post(
            form_url(assignment), {"label": "deny", "rationale": "I know this case.", "confirm_fast": "on"}
        )

        assert response.status_code == 302
        assert Review.objects.get().time_spent_seconds < FAST_REVIEW_SECONDS

    def test_a_second_click_after_a_confirmed_fast_review_is_told_it_is_recorded(self, client, version, reviewer_a):
        case(version, "application-00136")
        assignment = claim(client, reviewer_a, seconds_ago=0)
        data = {"label": "deny", "rationale": "I know this case."}
        client.post(form_url(assignment), data | {"confirm_fast": "on"})

        response = client.post(form_url(assignment), data, follow=True)

        assert "already recorded; nothing was submitted twice" in response.content.decode()
        assert Review.objects.count() == 1

    def test_a_case_with_fewer_features_or_a_slower_review_is_not_questioned(self, client, version, reviewer_a):
        case(version, "application-00001", prediction__features={"credit_amount": 4200.0, "duration": 24}, priority=9)
        case(version, "application-00002", priority=1)

        few = claim(client, reviewer_a, seconds_ago=0)
        assert client.post(form_url(few), {"label": "deny", "rationale": "x"}).status_code == 302
        slow = claim(client, reviewer_a, seconds_ago=FAST_REVIEW_SECONDS)
        assert client.post(form_url(slow), {"label": "deny", "rationale": "x"}).status_code == 302
        assert Review.objects.count() == 2

    def test_fast_reviews_are_counted_on_the_reviewer_statistics(self, version, reviewer_a, reviewer_b):
        for seconds, reviewer in ((1, reviewer_a), (2, reviewer_a), (40, reviewer_a), (60, reviewer_b)):
            ReviewFactory(
                assignment__task=case(version, f"c-{seconds}"),
                assignment__reviewer=reviewer,
                time_spent_seconds=seconds,
            )
        two_features = case(version, "c-two", prediction__features={"a": 1, "b": 2})
        ReviewFactory(assignment__task=two_features, assignment__reviewer=reviewer_b, time_spent_seconds=1)

        figures = {row.username: row for row in agreement_statistics(model_id=version.model_id).reviewers}

        assert figures[reviewer_a.username].fast_reviews == 2
        assert figures[reviewer_b.username].fast_reviews == 0
        mine = agreement_statistics(model_id=version.model_id, reviewer_id=reviewer_a.pk).reviewers
        assert [row.fast_reviews for row in mine] == [2]

    def test_the_rule_and_the_count(self):
        assert is_fast_review(2.9, 3) and not is_fast_review(3, 3) and not is_fast_review(0, 2)
        assert fast_review_counts([(1, 0, 8), (1, 5, 8), (2, 1, 1), (1, 2, 3)]) == {1: 2, 2: 0}


class TestMyCases:
    def test_each_case_shows_where_it_stands_and_the_final_label_only_once_decided(
        self, client, version, reviewer_a, reviewer_b, adjudicator
    ):
        waiting = case(version, "app-waiting")
        escalated = case(version, "app-escalated", status=TaskStatus.ESCALATED, escalation_reason="reviewers split")
        critical = case(version, "app-critical", status=TaskStatus.ESCALATED, needs_adjudication=True)
        decided = case(version, "app-decided", status=TaskStatus.DECIDED)
        appealed = case(version, "app-appealed", status=TaskStatus.DECIDED)
        for task, label in (
            (waiting, "deny"),
            (escalated, "deny"),
            (critical, "approve"),
            (decided, "deny"),
            (appealed, "approve"),
        ):
            reviewed(task, reviewer_a, label)
            reviewed(task, reviewer_b, "approve" if label == "deny" else "deny", "OTHER-SECRET")
        decision_record(
            prediction=decided.prediction,
            final_label="deny",
            source=DecisionSource.CONSENSUS,
            agreement=1.0,
            decided_by=None,
            reason="Consensus",
        )
        first = decision_record(
            prediction=appealed.prediction,
            final_label="approve",
            source=DecisionSource.CONSENSUS,
            agreement=1.0,
            decided_by=None,
            reason="Consensus",
        )
        decision_reverse_on_appeal(decision=first, final_label="deny", actor=adjudicator, reason="New evidence")
        client.force_login(reviewer_a)

        html = client.get(reverse("reviews:my_cases")).content.decode()
        rows = {row.case_name.split(" ")[0]: row for row in reviewer_cases(reviewer=reviewer_a).cases}

        assert {name: (row.standing, row.final_label) for name, row in rows.items()} == {
            "app-waiting": ("awaiting other reviews", ""),
            "app-escalated": ("escalated", ""),
            "app-critical": ("in adjudication", ""),
            "app-decided": ("decided", "deny"),
            "app-appealed": ("appealed", "deny"),
        }
        assert f"app-waiting (#{waiting.prediction_id})" in html and "in adjudication" in html
        assert "OTHER-SECRET" not in html and "reviewers split" not in html
        assert reverse("reviews:review", args=[rows["app-decided"].assignment_id]) in html
        assert 'id="nav-my-cases"' in html

    def test_another_reviewers_cases_are_not_listed(self, client, version, reviewer_a, reviewer_b):
        reviewed(case(version, "theirs-only"), reviewer_b, "deny")
        client.force_login(reviewer_a)

        html = client.get(reverse("reviews:my_cases")).content.decode()

        assert "theirs-only" not in html and 'id="no-cases"' in html

    def test_pages_follow_a_cursor_to_older_cases(self, client, version, reviewer_a, django_assert_num_queries):
        for number in range(27):
            reviewed(case(version, f"app-{number:05d}"), reviewer_a, "deny")
        client.force_login(reviewer_a)

        with django_assert_num_queries(5):
            first = client.get(reverse("reviews:my_cases")).content.decode()
        page = reviewer_cases(reviewer=reviewer_a)
        second = client.get(reverse("reviews:my_cases"), {"before": page.next_cursor}).content.decode()

        assert "app-00026" in first and "app-00002" in first and "app-00001 " not in first
        assert 'id="older-cases"' in first
        assert "app-00001" in second and "app-00000" in second and "app-00026" not in second
        assert 'id="older-cases"' not in second and 'id="newest-cases"' in second

    @pytest.mark.parametrize("cursor", ["abc", "0", "-5", "1e9"])
    def test_a_broken_page_link_is_a_400_with_a_way_back(self, client, reviewer_a, cursor):
        client.force_login(reviewer_a)

        response = client.get(reverse("reviews:my_cases"), {"before": cursor})

        assert response.status_code == 400
        assert "This page link is broken" in response.content.decode()

    def test_people_without_the_reviewer_role_get_a_403(self, client, db):
        client.force_login(UserFactory(roles=[Role.COMPLIANCE_OFFICER]))
        assert client.get(reverse("reviews:my_cases")).status_code == 403
