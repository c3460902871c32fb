"""docs/tour.md's five-minute tour, walked in a real browser on the short demo: each stop checks that the page
says what the tour says, then saves the full-page screenshot the tour shows: into test-output/ on a test run, into
docs/screenshots/ under `make screenshots` (HITL_TOUR_SCREENSHOTS_UPDATE=1), so a test run leaves the checkout as it
found it.

The demo is loaded once, by one test that walks the whole tour: loading it takes most of the time. Sequences are
reset first, so case and audit numbers are the same on every run; times are masked wherever they are an
element of their own.
"""

import io
import os
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Locator, Page, expect
from pytest_django.live_server_helper import LiveServer

from audits.choices import AuditPopulation
from audits.models import BiasAudit, RetrainingJob
from hitl_platform.demo import DEMO_MODEL_NAME
from models_registry import artifacts
from models_registry.models import MLModel
from reviews.choices import DecisionSource, TaskStatus
from reviews.models import Assignment, Decision, ReviewTask
from reviews.services.intake import predictions_ingest
from tests.conftest import REPO_ROOT, TEST_OUTPUT
from tests.factories import TEST_PASSWORD

pytestmark = [pytest.mark.browser]

TOUR_SCREENSHOTS = (
    REPO_ROOT / "docs" / "screenshots"
    if os.environ.get("HITL_TOUR_SCREENSHOTS_UPDATE")
    else TEST_OUTPUT / "tour-screenshots"
)
SHORT_DEMO_CASES = 240
TOUR_ACCOUNTS = ("carla", "rita")
# The case of docs/tour.md's curl example. Both of the demo's rules catch it, "large loans need review"
# (credit_amount > 10000) and the compensating control that sends under-25 applicants to people, so it goes to
# review whichever of them the policy holds.
LARGE_LOAN_TO_A_YOUNG_APPLICANT = {
    "credit_amount": 12500.0,
    "duration": 36,
    "age": 23,
    "job": 3,
    "housing": "own",
    "saving_accounts": "little",
    "checking_account": "moderate",
    "purpose": "car",
}
MASK_COLOUR = "#c8ced6"


def fact(page: Page, label: str) -> Locator:
    """The value cell of a facts table's row, found by the row's heading."""
    return page.locator(f'tr:has(> th:text-is("{label}")) > td')


def save(page: Page, name: str, *, mask: list[Locator]) -> None:
    TOUR_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert page.viewport_size["width"] == 1280
    page.screenshot(
        path=str(TOUR_SCREENSHOTS / f"{name}.png"),
        full_page=True,
        animations="disabled",
        mask=mask,
        mask_color=MASK_COLOUR,
    )


def log_in(browser: Browser, live_server: LiveServer, username: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live_server.url}{reverse('login')}")
    page.fill("#id_username", username)
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


@pytest.fixture
def demo(django_db_reset_sequences, settings, tmp_path) -> Iterator[MLModel]:
    """The short demo, with the tour's people given the suite's password (the demo prints random ones)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.BASE_DIR = tmp_path
    artifacts._MODEL_CACHE.clear()
    call_command("load_demo", cases=SHORT_DEMO_CASES, stdout=io.StringIO())
    for user in get_user_model().objects.filter(username__in=TOUR_ACCOUNTS):
        user.set_password(TEST_PASSWORD)
        user.save(update_fields=["password"])
    yield MLModel.objects.get(name=DEMO_MODEL_NAME)
    artifacts._MODEL_CACHE.clear()


def test_the_tour_shows_each_persons_pages_as_the_tour_describes_them(browser, live_server, demo):
    carla = log_in(browser, live_server, "carla")
    dashboard_stop(carla)
    case_trail_stop(carla, live_server, demo)
    bias_audit_stop(carla, live_server, demo)
    reviewer_form_stop(log_in(browser, live_server, "rita"), demo)
    retraining_stop(carla, live_server, demo)


def dashboard_stop(page: Page) -> None:
    expect(page.locator("#content h1")).to_have_text("Governance dashboard")
    outcomes = page.locator("#dashboard-outcomes")
    expect(outcomes).to_contain_text("Outcomes against the real results")
    expect(outcomes.locator("tbody tr")).to_have_count(1)
    expect(outcomes.locator("tbody td").nth(0)).to_have_text(DEMO_MODEL_NAME)
    expect(outcomes.locator("tbody td").nth(1)).to_have_text(str(SHORT_DEMO_CASES))
    audits = page.locator("#dashboard-bias-audits")
    expect(audits).to_contain_text("Bias audits and drift per model")
    expect(audits.locator("tbody tr")).to_contain_text(DEMO_MODEL_NAME)
    expect(page.locator("#dashboard-ledger")).to_contain_text(re.compile(r"(never verified|intact)\s+decision ledger"))
    save(
        page,
        "dashboard",
        mask=[
            page.locator("#dashboard-freshness"),
            page.locator('svg.hitl-chart text.axis[text-anchor="middle"]'),
            page.locator("#dashboard-bias-audits tbody td:nth-child(4)"),
        ],
    )


def case_trail_stop(page: Page, live_server: LiveServer, model: MLModel) -> None:
    """A case from production where people overturned the model, and the real outcome proved them right."""
    overturned = (
        Decision.objects.filter(model=model, source=DecisionSource.ADJUDICATION)
        .exclude(final_label=F("prediction__predicted_label"))
        .filter(prediction__outcome_label=F("final_label"))
        .select_related("prediction", "decided_by")
        .order_by("prediction_id")
    )
    decision = next((d for d in overturned if not any("staging" in r for r in d.prediction.route_reasons)), None)
    assert decision is not None, "the short demo has no overturned production case any more: pick another"
    page.goto(f"{live_server.url}{reverse('admin:case', args=[decision.prediction_id])}")

    expect(page.locator("#content h1")).to_contain_text(decision.prediction.external_id)
    expect(page.locator("#final-decision")).to_contain_text(
        f"{decision.final_label} by adjudication ({decision.decided_by.username})"
    )
    expect(page.locator("#outcome")).to_contain_text(decision.final_label)
    expect(page.locator("#review")).to_contain_text("reviewers split 1-1")
    expect(page.locator("#reviews tbody tr")).to_have_count(3)
    expect(page.locator("#ledger h2")).to_contain_text("all verified")
    save(
        page,
        "case-trail",
        mask=[
            fact(page, "Arrived"),
            page.locator("#outcome .quiet"),
            page.locator("#review table:not(#reviews) tbody td:nth-child(3)"),
            page.locator("#review table:not(#reviews) tbody td:nth-child(4)"),
            page.locator("#reviews tbody td:first-child"),
            page.locator("#history tbody td:first-child"),
            # The events' own "when" cells, not the cells of the payload tables inside them.
            page.locator("#ledger table").first.locator(":scope > tbody > tr > td:nth-child(2)"),
        ],
    )


def bias_audit_stop(page: Page, live_server: LiveServer, model: MLModel) -> None:
    """The demo's audit of the model's own labels: the failed one if one failed."""
    of_labels = BiasAudit.objects.filter(model=model, population=AuditPopulation.MODEL, version__isnull=False)
    audit = of_labels.filter(passed=False).order_by("pk").first() or of_labels.order_by("pk").last()
    page.goto(f"{live_server.url}{reverse('admin:audits_biasaudit_change', args=[audit.pk])}")

    expect(page.locator("#audit-verdict")).to_have_text(audit.get_verdict_display())
    expect(fact(page, "Population")).to_contain_text("The model's labels")
    expect(fact(page, "Cases audited")).to_contain_text(f"{SHORT_DEMO_CASES} cases")
    expect(page.locator("#content-main")).to_contain_text("the four-fifths rule requires at least 80%")
    save(
        page,
        "bias-audit",
        mask=[fact(page, label) for label in ("Requested", "Started", "Finished", "Ledger event")],
    )


def reviewer_form_stop(page: Page, model: MLModel) -> None:
    """Rita claims the next case, labels it with a reason, and submits it."""
    expect(page.locator("h1")).to_have_text("My queue")
    if not ReviewTask.objects.filter(model=model, status=TaskStatus.OPEN).exists():
        predictions_ingest(
            model=model,
            items=[
                {
                    "external_id": "application-9001",
                    "features": LARGE_LOAN_TO_A_YOUNG_APPLICANT,
                    "attributes": {"sex": "female", "age_band": "under 25"},
                }
            ],
            actor=model.owner,
        )
        page.reload()
    expect(page.locator("#count-available")).not_to_have_text("0")
    page.click("#next-case")

    expect(page).to_have_url(re.compile(r"/review/assignments/\d+/$"))
    claimed = Assignment.objects.select_related("task__prediction").get(pk=int(page.url.rstrip("/").split("/")[-1]))
    expect(page.locator("#case-title")).to_contain_text(claimed.task.prediction.case_name)
    # As if the reviewer had read the case for a minute: a two-second review would be questioned first.
    Assignment.objects.filter(pk=claimed.pk).update(claimed_at=timezone.now() - timedelta(minutes=1))
    expect(page.locator("#model-answer")).to_contain_text(claimed.task.prediction.predicted_label)
    expect(page.locator(".reasons")).to_contain_text(claimed.task.prediction.route_reasons[0])
    page.check("input[name=label][value=deny]")
    page.fill(
        "#id_rationale",
        "12,500 DM over 36 months with little savings: the instalment is high for what the application shows.",
    )
    save(page, "reviewer-form", mask=[page.locator("#timer"), page.get_by_text("This case is yours until")])
    page.click("#submit-review")
    expect(page.locator(".messages")).to_contain_text("Review recorded.")


def retraining_stop(page: Page, live_server: LiveServer, model: MLModel) -> None:
    """The mitigated candidate and its comparison with production; without one, the model's learning loop."""
    job = RetrainingJob.objects.filter(model=model).select_related("candidate_version").order_by("pk").last()
    if job is None:
        page.goto(f"{live_server.url}{reverse('admin:models_registry_mlmodel_change', args=[model.pk])}")
        expect(page.locator("#model-learning-loop")).to_be_visible()
        save(page, "retraining-comparison", mask=[])
        return
    page.goto(f"{live_server.url}{reverse('admin:audits_retrainingjob_change', args=[job.pk])}")

    expect(page.locator("#job-state-words")).to_contain_text(
        f"Candidate version {job.candidate_version.number} is ready for a person to review"
    )
    expect(page.locator("#job-state")).to_contain_text(f"promotion request #{job.promotion_request_id}")
    expect(fact(page, "Fairness constraint")).to_contain_text("Demographic parity on age_band")
    comparison = page.locator("#job-comparison")
    expect(comparison).to_contain_text("Base against candidate")
    expect(comparison).to_contain_text("Accuracy")
    expect(comparison).to_contain_text("Demographic parity ratio, across age_band")
    save(page, "retraining-comparison", mask=[fact(page, "Times"), fact(page, "Rebuilt by")])
