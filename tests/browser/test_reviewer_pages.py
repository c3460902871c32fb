"""A reviewer in a real browser: guidelines rendered and harmless, features named by the schema, a too-fast
review questioned before it is saved, their own answer after submitting, and "My cases"."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from models_registry.choices import Stage
from reviews.choices import AssignmentStatus, DecisionSource, TaskStatus
from reviews.models import Review
from reviews.services.decisions import decision_record
from tests.browser.test_review_flow import log_in
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory
from tests.reviews.factories import AssignmentFactory, ReviewFactory, ReviewTaskFactory, RoutingPolicyFactory

pytestmark = [pytest.mark.browser]

FEATURE_SCHEMA = {
    "type": "object",
    "properties": {
        "credit_amount": {"type": "number", "title": "Loan amount", "description": "Asked to borrow.", "x-unit": "DM"},
        "duration": {"type": "integer", "title": "Duration", "unit": "months"},
        "age": {"type": "integer", "title": "Applicant's age", "unit": "years"},
    },
}
GUIDELINES = (
    "## When to deny\n\n"
    "Deny when the instalment exceeds **40%** of the verified monthly income.\n\n"
    "- Refer when the income is *unverified*.\n"
    "- Read [the credit policy](https://intranet.example/credit-policy) first.\n\n"
    "[Open the shortcut](javascript:alert('link')) <script>alert('guidelines')</script>"
)


def reviewed(task, reviewer, label: str) -> None:
    assignment = AssignmentFactory(
        task=task, reviewer=reviewer, status=AssignmentStatus.SUBMITTED, finished_at=timezone.now()
    )
    ReviewFactory(assignment=assignment, label=label, rationale="Read the case.")


def test_a_reviewer_reads_the_guidelines_and_feature_titles_is_asked_about_a_fast_review_and_finds_it_in_my_cases(
    browser, live_server, screenshot, reviewer_a, reviewer_b
):
    model = MLModelFactory(labels=["approve", "deny"], feature_schema=FEATURE_SCHEMA, review_guidelines=GUIDELINES)
    version = ModelVersionFactory(model=model, stage=Stage.PRODUCTION)
    RoutingPolicyFactory(model=model, blind_review=False)
    task = ReviewTaskFactory(
        prediction__version=version, prediction__external_id="application-00136", reviews_required=2, priority=50
    )
    decided = ReviewTaskFactory(
        prediction__version=version, prediction__external_id="application-00101", status=TaskStatus.DECIDED
    )
    for reviewer, label in ((reviewer_a, "deny"), (reviewer_b, "deny")):
        reviewed(decided, reviewer, label)
    decision_record(
        prediction=decided.prediction,
        final_label="deny",
        source=DecisionSource.CONSENSUS,
        agreement=1.0,
        decided_by=None,
        reason="Consensus",
    )
    escalated = ReviewTaskFactory(
        prediction__version=version, prediction__external_id="application-00102", status=TaskStatus.ESCALATED
    )
    reviewed(escalated, reviewer_a, "approve")
    reviewed(escalated, reviewer_b, "deny")

    page = log_in(browser, live_server, reviewer_a)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.click("#next-case")

    # One case name; the schema's titles and units, with the raw keys still there.
    expect(page.locator("#case-title")).to_contain_text(f"application-00136 (#{task.prediction_id})")
    features = page.locator("#features")
    expect(features).to_contain_text("Loan amount")
    expect(features).to_contain_text("credit_amount")
    expect(features).to_contain_text("4,200 DM")
    expect(features).to_contain_text("Asked to borrow.")
    expect(features).to_contain_text("24 months")

    # The guidelines are Markdown: bold, a heading, a list, a safe link; the script and the script link are text.
    guidelines = page.locator("#guidelines")
    expect(guidelines.locator("strong")).to_have_text("40%")
    expect(guidelines.locator("h4")).to_have_text("When to deny")
    expect(guidelines.locator("li")).to_have_count(2)
    link = guidelines.get_by_role("link", name="the credit policy")
    expect(link).to_have_attribute("href", "https://intranet.example/credit-policy")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(guidelines.locator("a")).to_have_count(1)
    expect(guidelines.locator("script")).to_have_count(0)
    expect(guidelines).to_contain_text("<script>alert('guidelines')</script>")
    assert "**" not in guidelines.inner_text()
    screenshot(page, "reviewer-pages-01-review-form")

    # Submitted within a second of the claim, on a case with three features: asked first, nothing saved.
    page.check("input[name=label][value=approve]")
    page.fill("#id_rationale", "The income covers the instalment.")
    page.click("#submit-review")
    expect(page.locator("#fast-review")).to_contain_text("on a case with 3 features; are you sure?")
    assert not Review.objects.filter(task=task).exists()
    screenshot(page, "reviewer-pages-02-fast-review-question")
    page.check("#id_confirm_fast")
    page.click("#submit-review")

    # The page now shows the case and the reviewer's own answer.
    expect(page.locator(".messages")).to_contain_text("Review recorded.")
    expect(page.locator("#case-title")).to_contain_text("application-00136")
    expect(page.locator("#own-label")).to_have_text("approve")
    expect(page.locator("#own-rationale")).to_contain_text("The income covers the instalment.")
    assert dialogs == []

    # My cases, from the reviewer's menu: where each case stands, and the final label only once it is decided.
    page.click("#nav-my-cases")
    expect(page.locator("h1")).to_have_text("My cases")
    rows = page.locator("#my-cases tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="application-00136")).to_contain_text("awaiting other reviews")
    expect(rows.filter(has_text="application-00101")).to_contain_text("decided")
    expect(rows.filter(has_text="application-00101").locator("td").nth(5)).to_contain_text("deny")
    escalated_row = rows.filter(has_text="application-00102")
    expect(escalated_row).to_contain_text("escalated")
    expect(escalated_row.locator("td").nth(5)).to_have_text("—")
    screenshot(page, "reviewer-pages-03-my-cases")

    # Each case links back to the reviewer's own answer.
    rows.filter(has_text="application-00101").get_by_role("link").click()
    expect(page.locator("#own-label")).to_have_text("deny")
