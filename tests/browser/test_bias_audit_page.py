"""A failed bias audit's report in a real browser, at a desk's width, under the Content-Security-Policy."""

import pytest
from django.test import TestCase
from django.urls import reverse
from playwright.sync_api import expect

from audits.choices import AuditPopulation
from audits.services.bias_audits import bias_audit_request
from hitl_platform.roles import Role
from models_registry.choices import Stage
from tests.audits.bias_data import Cohort, cases_make
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_csp import WatchedPage
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory

pytestmark = [pytest.mark.browser]


def test_a_failed_audits_report_shows_its_verdict_and_bars_and_prints_as_a_report(
    browser, live_server, screenshot, compliance_officer
):
    owner = UserFactory(username="owen_owner", roles=[Role.ML_ENGINEER])
    version = ModelVersionFactory(stage=Stage.PRODUCTION, model__owner=owner, model__name="credit", created_by=owner)
    cases_make(
        version,
        [
            Cohort("female", "<35", 40, model_approved=20, outcome="approve"),
            Cohort("male", "<35", 40, model_approved=32, outcome="approve"),
            Cohort("female", "35+", 30, model_approved=12, outcome="deny"),
            Cohort("male", "35+", 30, model_approved=20, outcome="deny"),
            Cohort("other", "<35", 6, model_approved=3),
        ],
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        audit = bias_audit_request(
            actor=compliance_officer,
            model=version.model,
            population=AuditPopulation.MODEL,
            sensitive_attributes=["sex", "age_band"],
            version=version,
        )
    watched = WatchedPage(browser, live_server, compliance_officer)
    page = watched.page
    assert page.viewport_size["width"] == 1280

    watched.open(reverse("admin:audits_biasaudit_change", args=[audit.pk]))

    expect(page.locator("#audit-verdict")).to_have_text("Failed")
    expect(page.locator("#audit-verdict")).to_have_class("hitl-verdict verdict-failed")
    bar = page.locator(f"#audit-{audit.pk}-scope-0-selection_rate rect.bar-judged").first
    expect(bar).to_be_visible()
    assert bar.bounding_box()["width"] > 50
    # A vertical line has no width, so Playwright never calls it visible: its label is what a reader sees.
    expect(page.locator(f"#audit-{audit.pk}-scope-0-selection_rate line.threshold")).to_have_count(1)
    expect(page.locator(f"#audit-{audit.pk}-scope-0-selection_rate text.threshold-label")).to_be_visible()
    expect(page.locator("button[data-print]")).to_be_visible()
    screenshot(page, "bias-audit-01-failed-report")
    watched.assert_nothing_refused()

    page.emulate_media(media="print")
    expect(page.locator("#header")).to_be_hidden()
    expect(page.locator(".object-tools")).to_be_hidden()
    expect(bar).to_be_visible()
    screenshot(page, "bias-audit-02-failed-report-print")
    page.pdf(path=str(SCREENSHOTS / "bias-audit-03-failed-report.pdf"), format="A4", print_background=True)
    watched.assert_nothing_refused()
