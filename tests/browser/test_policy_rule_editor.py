"""A compliance officer adds a business rule to a model's routing policy in a real browser, at a desk's width."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from models_registry.choices import RiskTier
from reviews.services.policies import routing_policy_get_or_create_default
from tests.browser.test_csp import WatchedPage
from tests.models_registry.factories import MLModelFactory

pytestmark = [pytest.mark.browser]


def test_a_rule_added_as_a_row_is_refused_with_its_row_error_then_saved_and_in_history(
    browser, live_server, screenshot, compliance_officer
):
    policy = routing_policy_get_or_create_default(model=MLModelFactory(name="credit-scoring", risk_tier=RiskTier.HIGH))
    watched = WatchedPage(browser, live_server, compliance_officer)
    page = watched.page
    assert page.viewport_size["width"] == 1280

    watched.open(reverse("admin:reviews_routingpolicy_changelist"))
    page.get_by_role("link", name="credit-scoring", exact=True).click()
    expect(page.locator("#rules-group tbody tr.form-row")).to_have_count(3)
    page.get_by_role("button", name="Add a rule").click()
    new_row = page.locator("#rules-3")
    expect(new_row).to_be_visible()
    new_row.get_by_label("Feature").select_option("credit_amount")
    new_row.get_by_label("Operator").select_option(">")
    new_row.get_by_label("Value").fill("lots")
    new_row.get_by_label("Action").select_option("review")
    new_row.get_by_label("Reason").fill("Large loans need a second look")
    page.fill("#id_reason", "Credit committee, minutes 2026-12")
    page.click("input[name=_save]")

    expect(page.locator("#rules-3 .errorlist")).to_have_text(
        "credit_amount is a number: enter a number such as 10000 or 0.5."
    )
    expect(page.locator("#rules-0 .errorlist")).to_have_count(0)
    expect(page.locator("p.errornote")).to_be_visible()
    screenshot(page, "policy-rules-01-bad-value-row-error")
    policy.refresh_from_db()
    assert policy.rules == []

    page.locator("#rules-3").get_by_label("Value").fill("10000")
    page.click("input[name=_save]")

    expect(page.locator(".messagelist .success")).to_be_visible()
    page.get_by_role("link", name="credit-scoring", exact=True).click()
    saved = page.locator("#rules-0")
    expect(saved.get_by_label("Feature")).to_have_value("credit_amount")
    expect(saved.get_by_label("Value")).to_have_value("10000")
    expect(saved.get_by_label("Reason")).to_have_value("Large loans need a second look")
    screenshot(page, "policy-rules-02-saved-rule")
    policy.refresh_from_db()
    assert policy.rules == [
        {
            "field": "credit_amount",
            "operator": ">",
            "value": 10000,
            "action": "review",
            "reason": "Large loans need a second look",
        }
    ]

    page.get_by_role("link", name="History").click()
    latest = page.locator("#change-history tbody tr").first
    expect(latest).to_contain_text("Credit committee, minutes 2026-12")
    expect(latest).to_contain_text(compliance_officer.username)
    screenshot(page, "policy-rules-03-history")
    watched.assert_nothing_refused()
