"""Browser tests: Playwright's sync API driving Debian's Chromium against pytest-django's live server.

Never `playwright install`: the browser is the system package (`apt-get install chromium`), launched headless
with the network-quiet flags of ENVIRONMENT.md. Each person gets their own browser context, so their
sessions are as separate as three people at three desks.
"""

from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import TEST_OUTPUT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = TEST_OUTPUT / "browser"


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(
                pytest.mark.skip(reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
            )


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in the test's thread; Django's ORM calls made by the test itself
    # (setting up data, checking results) are still synchronous and safe there. Set for this test only, so no
    # subprocess started by another test (e.g. `check --deploy`) inherits it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        # chromium.launch starts from a fresh temporary profile (user-data dir) every time.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
            # While Playwright's event loop runs, the test's own ORM calls get a database connection of their
            # own context, which pytest-django never sees: close it here, or the test database cannot be
            # dropped at the end of the session.
            connections.close_all()


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under test-output/browser/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
