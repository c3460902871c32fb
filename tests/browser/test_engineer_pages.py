"""An ML engineer's pages in a real browser at a desk's width: their models, and a token made, shown once, revoked."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from models_registry.choices import Stage
from reviews.choices import Route
from tests.browser.test_csp import WatchedPage
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory
from tests.reviews.factories import PredictionFactory, ReviewTaskFactory

pytestmark = [pytest.mark.browser]

NO_HORIZONTAL_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def test_an_engineer_sees_their_models_then_makes_and_revokes_a_token(browser, live_server, screenshot, ml_engineer):
    version = ModelVersionFactory(
        model=MLModelFactory(name="credit-scoring-with-a-rather-long-name", owner=ml_engineer),
        number=3,
        stage=Stage.PRODUCTION,
    )
    for route in (Route.AUTO, Route.AUTO, Route.AUTO, Route.REVIEW):
        PredictionFactory(version=version, model=version.model, route=route)
    ReviewTaskFactory(prediction=PredictionFactory(version=version, model=version.model))
    watched = WatchedPage(browser, live_server, ml_engineer)
    page = watched.page
    assert page.viewport_size["width"] == 1280

    page.click("#engineer-home-link")
    row = page.locator("#engineer-models tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("version 3")
    expect(row).to_contain_text("60%")
    assert page.evaluate(NO_HORIZONTAL_SCROLL)
    screenshot(page, "engineer-01-my-models")

    page.click("nav >> text=API tokens")
    page.click("#create-token button[type=submit]")
    expect(page.locator("#name-errors")).to_contain_text("Name the token")
    page.fill("#id_name", "nightly-scoring")
    page.select_option("#id_lifetime", label="7 days")
    page.click("#create-token button[type=submit]")
    key = page.locator("#new-token-key")
    expect(key).to_be_visible()
    token = key.inner_text().strip()
    assert len(token) >= 40
    expect(page.locator("#tokens tbody tr")).to_have_count(1)
    expect(page.locator("#tokens")).to_contain_text("nightly-scoring")
    assert page.evaluate(NO_HORIZONTAL_SCROLL)
    screenshot(page, "engineer-02-token-shown-once")

    watched.open(reverse("engineers:tokens"))
    expect(page.locator("#new-token")).to_have_count(0)
    assert token not in page.content()

    page.click("#tokens >> text=Revoke")
    expect(page.locator("h1")).to_contain_text("Revoke “nightly-scoring”?")
    assert page.evaluate(NO_HORIZONTAL_SCROLL)
    screenshot(page, "engineer-03-revoke-confirm")
    page.click("#revoke-token button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("is revoked")
    expect(page.locator("#no-tokens")).to_be_visible()
    assert page.evaluate(NO_HORIZONTAL_SCROLL)
    screenshot(page, "engineer-04-token-revoked")
    watched.assert_nothing_refused()
