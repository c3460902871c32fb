"""The console, the reviewer pages and the API docs still work in a real browser under the Content-Security-Policy.

Every page is watched: a "Content Security Policy" message on the console (Chromium's own, or the one the
securitypolicyviolation listener below writes for every refusal) or an uncaught script error fails the test.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule
from playwright.sync_api import expect

from models_registry.choices import Stage
from reviews.models import Assignment
from tests.factories import TEST_PASSWORD
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory, PromotionRequestFactory
from tests.reviews.factories import (
    DecisionFactory,
    PredictionFactory,
    ReviewTaskFactory,
    RoutingPolicyFactory,
    adjudicated_split_case,
)

pytestmark = [pytest.mark.browser]

# Playwright's init scripts run outside the page's policy, so this listener sees every refusal, including ones
# Chromium does not print (a blocked style attribute set from script, say).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const refused = event.blockedURI || "inline code";
  console.error(`Content Security Policy violation: ${event.effectiveDirective} refused ${refused}`);
});
"""


class WatchedPage:
    """A logged-in page whose console messages about the Content Security Policy and uncaught errors are kept."""

    def __init__(self, browser, live_server, user) -> None:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(REPORT_VIOLATIONS)
        self.page = context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught error: {error}"))
        self.live_server = live_server
        self.page.goto(f"{live_server.url}{reverse('login')}")
        self.page.fill("#id_username", user.username)
        self.page.fill("#id_password", TEST_PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.problems.append(message.text)

    def open(self, url: str) -> None:
        self.page.goto(f"{self.live_server.url}{url}")

    def assert_nothing_refused(self) -> None:
        """Once the page has loaded everything it asks for, nothing was refused and no script failed."""
        self.page.wait_for_load_state("networkidle")
        assert self.problems == [], "\n".join(self.problems)


def test_the_dashboard_draws_its_charts_and_runs_the_admins_scripts(
    browser, live_server, screenshot, compliance_officer, reviewer_a, reviewer_b, adjudicator
):
    adjudicated_split_case(PredictionFactory(), reviewers=(reviewer_a, reviewer_b), adjudicator=adjudicator)
    for _ in range(3):
        DecisionFactory()
    watched = WatchedPage(browser, live_server, compliance_officer)
    page = watched.page

    expect(page.locator(".hitl-kpis")).to_be_visible()
    expect(page.locator("svg.hitl-chart")).to_have_count(2)
    # The admin's theme.js sets the theme on load and cycles it on a click: its scripts run under the policy.
    expect(page.locator("html")).to_have_attribute("data-theme", "auto")
    screenshot(page, "csp-01-console-dashboard")
    page.locator("button.theme-toggle").first.click()
    expect(page.locator("html")).not_to_have_attribute("data-theme", "auto")
    watched.assert_nothing_refused()


def test_a_changelist_selects_rows_and_offers_its_actions(browser, live_server, screenshot, compliance_officer):
    for _ in range(2):
        PromotionRequestFactory(version=ModelVersionFactory(stage=Stage.STAGING))
    watched = WatchedPage(browser, live_server, compliance_officer)
    watched.open(reverse("admin:models_registry_promotionrequest_changelist"))
    page = watched.page

    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.check("#action-toggle")
    expect(page.locator(".action-counter")).to_contain_text("2 of 2 selected")
    page.select_option("select[name=action]", "reject_requests")
    screenshot(page, "csp-02-changelist")
    watched.assert_nothing_refused()


def test_the_case_trail_and_its_history_render(
    browser, live_server, screenshot, compliance_officer, reviewer_a, reviewer_b, adjudicator
):
    case = PredictionFactory(features={"credit_amount": 9800.0, "duration": 48})
    adjudicated_split_case(case, reviewers=(reviewer_a, reviewer_b), adjudicator=adjudicator)
    watched = WatchedPage(browser, live_server, compliance_officer)
    page = watched.page

    watched.open(reverse("admin:case", args=[case.pk]))
    expect(page.locator("#final-decision")).to_contain_text("deny")
    expect(page.locator("#ledger")).to_contain_text("all verified")
    screenshot(page, "csp-03-case-trail")
    watched.open(reverse("admin:reviews_prediction_history", args=[case.pk]))
    expect(page.locator("#change-history")).to_be_visible()
    screenshot(page, "csp-04-case-history")
    watched.assert_nothing_refused()


def test_the_review_form_keeps_its_shortcuts_and_timer(browser, live_server, screenshot, reviewer_a):
    model = MLModelFactory(labels=["approve", "deny"])
    RoutingPolicyFactory(model=model, blind_review=False)
    task = ReviewTaskFactory(prediction__version=ModelVersionFactory(model=model, stage=Stage.PRODUCTION))
    watched = WatchedPage(browser, live_server, reviewer_a)
    page = watched.page

    expect(page.locator("h1")).to_have_text("My queue")
    page.keyboard.press("n")
    expect(page.locator("#case-title")).to_contain_text(task.prediction.case_name)
    # As if the reviewer had read the case for a minute: a two-second review would be questioned first.
    Assignment.objects.filter(reviewer=reviewer_a).update(claimed_at=timezone.now() - timedelta(minutes=1))
    expect(page.locator(".scores .bar rect").first).to_have_attribute("width", "64")
    page.keyboard.press("2")
    expect(page.locator("input[name=label][value=deny]")).to_be_checked()
    page.keyboard.press("1")
    expect(page.locator("input[name=label][value=approve]")).to_be_checked()
    page.fill("#id_rationale", "The income covers the instalments.")
    page.wait_for_timeout(1200)
    expect(page.locator("#timer")).not_to_have_text("0:00")
    screenshot(page, "csp-05-review-form")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".messages")).to_contain_text("Review recorded.")
    watched.assert_nothing_refused()


def test_the_swagger_ui_lists_the_operations(browser, live_server, screenshot, ml_engineer):
    watched = WatchedPage(browser, live_server, ml_engineer)
    page = watched.page

    page.click("text=API documentation")
    expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
    assert page.locator(".opblock").count() > 10
    # Opening an operation renders its parameters and responses: more of Swagger UI's markup and styles.
    page.locator(".opblock-summary").first.click()
    expect(page.locator(".opblock.is-open .responses-wrapper")).to_be_visible()
    screenshot(page, "csp-06-api-docs")
    watched.assert_nothing_refused()


def test_the_periodic_task_form_says_the_chosen_crontab_in_words(browser, live_server, screenshot, admin_user):
    crontab = CrontabSchedule.objects.create(minute="15", hour="1")
    watched = WatchedPage(browser, live_server, admin_user)
    watched.open(reverse("admin:django_celery_beat_periodictask_add"))
    page = watched.page

    page.select_option("#id_crontab", str(crontab.pk))
    expect(page.locator("#crontab-in-words")).to_contain_text("01:15")
    screenshot(page, "csp-07-periodic-task-form")
    watched.assert_nothing_refused()


def test_the_browser_refuses_a_script_injected_into_a_page_and_the_watch_sees_it(browser, live_server, reviewer_a):
    watched = WatchedPage(browser, live_server, reviewer_a)
    page = watched.page

    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true;";
            document.body.appendChild(script);
        }"""
    )

    page.wait_for_timeout(200)
    assert page.evaluate("() => window.injected === undefined")
    assert any("script-src" in problem for problem in watched.problems), watched.problems
