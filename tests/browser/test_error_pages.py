"""The friendly error pages in a real browser: a refusal and a missing page each say why and lead back."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.test_csp import WatchedPage

pytestmark = [pytest.mark.browser]

NO_HORIZONTAL_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def test_a_reviewer_refused_a_page_and_lost_on_another_finds_the_way_back(browser, live_server, screenshot, reviewer_a):
    watched = WatchedPage(browser, live_server, reviewer_a)
    page = watched.page

    response = page.goto(f"{live_server.url}{reverse('engineers:home')}")
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("You may not open this page")
    expect(page.get_by_role("link", name="Log in as someone else")).to_be_visible()
    assert page.evaluate(NO_HORIZONTAL_SCROLL)
    watched.assert_nothing_refused()
    screenshot(page, "error-403")

    response = page.goto(f"{live_server.url}/review/no-such-page/")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("This page does not exist")
    expect(page.locator("main code")).to_have_text("/review/no-such-page/")
    assert page.evaluate(NO_HORIZONTAL_SCROLL)
    screenshot(page, "error-404")
    page.get_by_role("link", name="Back to the review queue").click()
    expect(page).to_have_url(f"{live_server.url}{reverse('reviews:queue')}")
