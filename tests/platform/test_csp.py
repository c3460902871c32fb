"""The Content-Security-Policy: every page family sends it, and no page carries code the policy would refuse.

The browser side (that the pages still work under the policy) is tests/browser/test_csp.py.
"""

import base64
import hashlib
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule

from models_registry.choices import Stage
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory, PromotionRequestFactory
from tests.reviews.factories import (
    AssignmentFactory,
    PredictionFactory,
    ReviewTaskFactory,
    RoutingPolicyFactory,
    adjudicated_split_case,
)

# What every page must be told, directive by directive (extra sources in any of these would loosen the policy).
REQUIRED_DIRECTIVES = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Swagger UI's stylesheet draws its icons as data: images; only the API docs page may load them.
EXTRA_SOURCES = {"api docs": {"img-src": ["data:"]}}
# <script type="application/json"> (json_script) is data the browser never runs; the policy does not apply to it.
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}


def csp_directives(header: str) -> dict[str, list[str]]:
    """'a b c; d e' -> {"a": ["b", "c"], "d": ["e"]}."""
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def style_hash(value: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(value.encode()).digest()).decode() + "'"


@dataclass
class RefusedMarkup(HTMLParser):
    """Collects what in a page the policy refuses: inline scripts and <style> elements without the policy's
    nonce, on* event handler attributes, javascript: URLs, style attributes whose hash the policy does not list,
    and scripts, stylesheets or images from another origin."""

    script_nonces: set[str]
    allowed_style_attributes: set[str]
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._open: tuple[str, dict] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        for name, value in attributes.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> is an inline event handler")
            if name in ("href", "src", "action", "formaction") and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}> is a javascript: URL")
        if "style" in attributes and style_hash(attributes["style"]) not in self.allowed_style_attributes:
            self.problems.append(f'<{tag} style="{attributes["style"]}"> is an inline style the policy does not list')
        resource = attributes.get("src") if tag in ("script", "img") else None
        if tag == "link" and attributes.get("rel") in ("stylesheet", "icon"):
            resource = attributes.get("href")
        if resource is not None and not (resource.startswith("/") and not resource.startswith("//")):
            self.problems.append(f"<{tag}> loads {resource!r} from another origin")
        if tag in ("script", "style"):
            self._open, self._text = (tag, attributes), []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if not self._open or tag != self._open[0]:
            return
        attributes, text = self._open[1], "".join(self._text).strip()
        self._open = None
        if tag == "script" and ("src" in attributes or attributes.get("type") in DATA_SCRIPT_TYPES):
            return
        if tag == "script" and attributes.get("nonce") in self.script_nonces:
            return
        self.problems.append(f"inline <{tag}> without the page's nonce: {text[:80]!r}")


def refused_markup(html: str, directives: dict[str, list[str]]) -> list[str]:
    """Everything in ``html`` that the browser would refuse under ``directives``."""
    nonces = {source[len("'nonce-") : -1] for source in directives["script-src"] if source.startswith("'nonce-")}
    finder = RefusedMarkup(script_nonces=nonces, allowed_style_attributes=set(directives.get("style-src-attr", [])))
    finder.feed(html)
    finder.close()
    return finder.problems


@dataclass(frozen=True)
class Page:
    user: object
    url: str


@pytest.fixture
def pages(db, compliance_officer, admin_user, reviewer_a, reviewer_b, adjudicator, ml_engineer):
    """One page of each family, with the person who works on it (None: nobody logged in)."""
    case = PredictionFactory(
        features={"credit_amount": 9800.0, "duration": 48},
        route_reasons=["credit_amount > 8000: review"],
    )
    adjudicated_split_case(case, reviewers=(reviewer_a, reviewer_b), adjudicator=adjudicator)
    model = MLModelFactory(labels=["approve", "deny"])
    RoutingPolicyFactory(model=model, blind_review=False)
    version = ModelVersionFactory(model=model, stage=Stage.PRODUCTION)
    held = AssignmentFactory(task=ReviewTaskFactory(prediction__version=version), reviewer=reviewer_a)
    promotion = PromotionRequestFactory(version=ModelVersionFactory(model=model, stage=Stage.STAGING))
    CrontabSchedule.objects.create(minute="15", hour="1")
    return {
        "login": Page(None, reverse("login")),
        "not found": Page(None, "/no-such-page/"),
        "console dashboard": Page(compliance_officer, reverse("admin:index")),
        "changelist": Page(compliance_officer, reverse("admin:reviews_prediction_changelist")),
        "changelist with actions": Page(
            compliance_officer, reverse("admin:models_registry_promotionrequest_changelist")
        ),
        "change form": Page(
            compliance_officer, reverse("admin:models_registry_promotionrequest_change", args=[promotion.pk])
        ),
        "history": Page(compliance_officer, reverse("admin:reviews_prediction_history", args=[case.pk])),
        "case trail": Page(compliance_officer, reverse("admin:case", args=[case.pk])),
        "ledger": Page(compliance_officer, reverse("admin:ledger")),
        "exports": Page(compliance_officer, reverse("admin:audits_export_changelist")),
        "new export": Page(compliance_officer, reverse("admin:export_new")),
        "periodic task form": Page(admin_user, reverse("admin:django_celery_beat_periodictask_add")),
        "reviewer queue": Page(reviewer_a, reverse("reviews:queue")),
        "review form": Page(reviewer_a, reverse("reviews:review", args=[held.pk])),
        "adjudication": Page(adjudicator, reverse("reviews:adjudication")),
        "api docs": Page(ml_engineer, reverse("api-v1:docs")),
    }


PAGE_FAMILIES = [
    "login",
    "not found",
    "console dashboard",
    "changelist",
    "changelist with actions",
    "change form",
    "history",
    "case trail",
    "ledger",
    "exports",
    "new export",
    "periodic task form",
    "reviewer queue",
    "review form",
    "adjudication",
    "api docs",
]


def _get(client, page: Page):
    if page.user is not None:
        client.force_login(page.user)
    return client.get(page.url)


@pytest.mark.parametrize("family", PAGE_FAMILIES)
def test_each_page_family_sends_the_policy(client, pages, family):
    response = _get(client, pages[family])

    assert response.status_code == (404 if family == "not found" else 200)
    directives = csp_directives(response["Content-Security-Policy"])
    expected = {
        name: sources + EXTRA_SOURCES.get(family, {}).get(name, []) for name, sources in REQUIRED_DIRECTIVES.items()
    }
    assert {name: directives.get(name) for name in REQUIRED_DIRECTIVES} == expected
    assert all(source == "'unsafe-hashes'" or source.startswith("'sha256-") for source in directives["style-src-attr"])


@pytest.mark.parametrize("family", PAGE_FAMILIES)
def test_no_page_carries_inline_code_the_policy_refuses(client, pages, family):
    response = _get(client, pages[family])

    directives = csp_directives(response["Content-Security-Policy"])
    assert refused_markup(response.content.decode(), directives) == []


def test_the_api_docs_load_their_init_script_as_a_file_of_this_server(client, ml_engineer):
    client.force_login(ml_engineer)
    html = client.get(reverse("api-v1:docs")).content.decode()
    assert f'<script src="{reverse("api-v1:docs")}?script="></script>' in html

    script = client.get(reverse("api-v1:docs"), {"script": ""})

    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()


def test_api_responses_carry_the_policy_too(client, ml_engineer):
    client.force_login(ml_engineer)

    response = client.get(reverse("api-v1:schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert csp_directives(response["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("<script>alert(1)</script>", "inline <script>"),
        ('<script nonce="guess">alert(1)</script>', "inline <script>"),
        ("<style>body{}</style>", "inline <style>"),
        ('<button onclick="go()">', "inline event handler"),
        ('<a href="javascript:go()">', "javascript: URL"),
        ('<span style="color: red">', "inline style"),
        ('<script src="https://cdn.example.org/x.js"></script>', "another origin"),
        ('<link rel="stylesheet" href="//cdn.example.org/x.css">', "another origin"),
    ],
)
def test_the_page_check_finds_what_the_policy_refuses(html, problem):
    directives = csp_directives("script-src 'self'; style-src-attr 'unsafe-hashes' " + style_hash("border-top: 0"))

    problems = refused_markup(html, directives)

    assert len(problems) == 1 and problem in problems[0]


def test_the_page_check_lets_through_what_the_policy_allows():
    directives = csp_directives(
        "script-src 'self' 'nonce-abc'; style-src-attr 'unsafe-hashes' " + style_hash("border-top: 0")
    )
    html = (
        '<script src="/static/hitl/review.js" defer></script><script nonce="abc">go()</script>'
        '<script type="application/json" id="data">{"a": 1}</script><p style="border-top: 0">'
        '<svg viewBox="0 0 100 6"><rect width="40" height="6"/></svg><img src="/static/x.png">'
    )

    assert refused_markup(html, directives) == []
