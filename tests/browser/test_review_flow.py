"""Two reviewers disagree on a case in a real browser; an adjudicator makes the final call."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from models_registry.choices import Stage
from reviews.choices import ConsensusRule, DecisionSource, TaskStatus
from reviews.models import Assignment, Decision, Review
from tests.factories import TEST_PASSWORD
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory
from tests.reviews.factories import ReviewTaskFactory, RoutingPolicyFactory

pytestmark = [pytest.mark.browser]


def as_if_read_for(reviewer, seconds: int = 60) -> None:
    """Move the reviewer's claim back in time, as if they had read the case that long (no fast-review question)."""
    Assignment.objects.filter(reviewer=reviewer, status="claimed").update(
        claimed_at=timezone.now() - timedelta(seconds=seconds)
    )


def log_in(browser, live_server, user):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("My queue")
    return page


def test_a_disagreement_goes_to_an_adjudicator_who_decides_it(
    browser, live_server, screenshot, reviewer_a, reviewer_b, adjudicator
):
    model = MLModelFactory(
        labels=["approve", "deny"],
        review_guidelines="Deny when the instalment exceeds 40% of the monthly income.",
    )
    version = ModelVersionFactory(model=model, stage=Stage.PRODUCTION)
    RoutingPolicyFactory(model=model, consensus_rule=ConsensusRule.MAJORITY, blind_review=False)
    task = ReviewTaskFactory(
        prediction__version=version,
        prediction__explanation={"credit_amount": -0.4, "duration": 0.2},
        reviews_required=2,
    )

    # Reviewer A works by keyboard: N for the next case, 1 for the first label, Ctrl+Enter to submit.
    page_a = log_in(browser, live_server, reviewer_a)
    screenshot(page_a, "01-reviewer-a-queue")
    page_a.keyboard.press("n")
    expect(page_a.locator("#case-title")).to_contain_text(task.prediction.case_name)
    as_if_read_for(reviewer_a)
    expect(page_a.locator("#model-answer")).to_contain_text("approve")
    expect(page_a.locator("#shortcuts")).to_contain_text("Ctrl")
    page_a.keyboard.press("1")
    expect(page_a.locator("input[name=label][value=approve]")).to_be_checked()
    page_a.fill("#id_rationale", "The loan is modest for the duration; the income covers it.")
    page_a.wait_for_timeout(1200)
    expect(page_a.locator("#timer")).not_to_have_text("0:00")
    screenshot(page_a, "02-reviewer-a-form")
    page_a.keyboard.press("Control+Enter")
    expect(page_a.locator(".messages")).to_contain_text("Review recorded.")
    screenshot(page_a, "03-reviewer-a-submitted")

    # Reviewer B clicks, and clicks twice: the case is still submitted once.
    page_b = log_in(browser, live_server, reviewer_b)
    page_b.click("#next-case")
    expect(page_b.locator("#case-title")).to_contain_text(task.prediction.case_name)
    as_if_read_for(reviewer_b)
    page_b.check("input[name=label][value=deny]")
    page_b.fill("#id_rationale", "Twenty-four months at this amount is more than 40% of the income.")
    screenshot(page_b, "04-reviewer-b-form")
    page_b.dblclick("#submit-review")
    expect(page_b.locator(".messages")).to_contain_text("Review recorded.")

    task.refresh_from_db()
    assert task.status == TaskStatus.ESCALATED
    assert Review.objects.filter(task=task).count() == 2
    assert Review.objects.get(reviewer=reviewer_a).time_spent_seconds >= 1

    # The adjudicator sees both reviews and their rationales, and makes the final call.
    page_c = log_in(browser, live_server, adjudicator)
    page_c.click("text=Adjudication")
    expect(page_c.locator("#escalated")).to_contain_text(task.prediction.case_name)
    screenshot(page_c, "05-adjudication-list")
    page_c.click(f"text={task.prediction.case_name}")
    expect(page_c.locator("#reviews")).to_contain_text("the income covers it")
    expect(page_c.locator("#reviews")).to_contain_text("more than 40% of the income")
    expect(page_c.locator("#escalation-reason")).to_contain_text("reviewers split 1-1")
    page_c.keyboard.press("2")
    page_c.fill("#id_reason", "The instalment is 45% of the verified income; the guideline says deny.")
    screenshot(page_c, "06-adjudication-form")
    page_c.click("#submit-adjudication")
    expect(page_c.locator(".messages")).to_contain_text(
        re.compile(rf"{re.escape(task.prediction.case_name)} is decided as deny")
    )
    screenshot(page_c, "07-adjudication-done")

    decision = Decision.objects.get(prediction=task.prediction)
    assert (decision.final_label, decision.source, decision.decided_by) == (
        "deny",
        DecisionSource.ADJUDICATION,
        adjudicator,
    )
    assert decision.agreement == 0.5


def test_blind_review_keeps_the_models_answer_out_of_the_browser(browser, live_server, screenshot, reviewer_a):
    model = MLModelFactory(labels=["approve", "deny"])
    version = ModelVersionFactory(model=model, stage=Stage.PRODUCTION)
    RoutingPolicyFactory(model=model, blind_review=True)
    ReviewTaskFactory(prediction__version=version, prediction__confidence=0.731)

    page = log_in(browser, live_server, reviewer_a)
    page.click("#next-case")

    expect(page.locator("#blind-note")).to_be_visible()
    expect(page.locator("#model-answer")).to_have_count(0)
    assert "0.731" not in page.content()
    screenshot(page, "08-blind-review-form")
