"""The console fits a 1280 px screen: the dashboard and every list a compliance officer can open, filled with
long ids, names, labels and URLs, never scroll sideways (neither the page nor a table inside it)."""

import pytest
from django.contrib.admin import site
from django.test import RequestFactory
from django.urls import reverse

from audits.choices import AuditPopulation, JobStatus
from audits.ledger import ledger_append
from audits.models import AuditPolicy, DriftCheck, Export, RetrainingJob
from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import AssignmentStatus, DecisionSource, DeliveryStatus
from reviews.models import Webhook, WebhookDelivery
from tests.audits.factories import BiasAuditFactory
from tests.browser.test_csp import WatchedPage
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory, PromotionRequestFactory
from tests.reviews.factories import (
    AssignmentFactory,
    DecisionFactory,
    PredictionFactory,
    ReviewFactory,
    ReviewTaskFactory,
    RoutingPolicyFactory,
)

pytestmark = [pytest.mark.browser]

WIDTH = 1280
LONG_USERNAME = "reviewer.from.the.outsourcing.partner.in.another.country"
LONG_LABEL = "approve_with_conditions_pending_income_verification"
LONG_URL = "https://hooks.bank.example.org/governance/v1/decisions/final?tenant=eu-central-1&rotation=2026-12"
LONG_ERROR = "Connection refused by the receiver after 30 s; " * 4

# How wide the page is, and the widest table box that scrolls inside it (the admin's lists scroll their table).
MEASURE = """
() => {
  const inner = [...document.querySelectorAll("#changelist .results, .hitl-dashboard > .module, .module")]
    .map((box) => box.scrollWidth - box.clientWidth);
  return {page: document.documentElement.scrollWidth, innerOverflow: Math.max(0, ...inner)};
}
"""


def _console_rows(compliance_officer) -> list[tuple[str, str]]:
    """A few rows of every kind the console lists, each with the longest values people really send; returns
    detail pages that show them (a case's trail and record, a ledger event)."""
    reviewer = UserFactory(username=LONG_USERNAME, roles=[Role.REVIEWER])
    owner = UserFactory(username="owner.of.the.consumer.credit.models.team", roles=[Role.ML_ENGINEER])
    version = ModelVersionFactory(
        stage=Stage.PRODUCTION,
        model__name="consumer-credit-europe-gradient-boosting-2026",
        model__owner=owner,
        created_by=owner,
    )
    RoutingPolicyFactory(model=version.model)
    AuditPolicy.objects.create(model=version.model)
    candidate = ModelVersionFactory(model=version.model, created_by=owner)
    PromotionRequestFactory(version=candidate)
    webhook = Webhook.objects.create(
        owner=owner, url=LONG_URL, events=["decision.final", "audit.failed"], secret="s" * 32
    )
    for n in range(4):
        prediction = PredictionFactory(
            version=version,
            external_id=f"application-2026-12-03-{n:010d}-EU-DE-berlin-branch-0042-online-channel",
            predicted_label=LONG_LABEL,
            confidence=0.8431,
        )
        DecisionFactory(prediction=prediction, final_label="deny", source=DecisionSource.AUTO)
        reviewed = PredictionFactory(version=version, external_id="x" * 120 + str(n), predicted_label=LONG_LABEL)
        task = ReviewTaskFactory(prediction=reviewed)
        assignment = AssignmentFactory(task=task, reviewer=reviewer, status=AssignmentStatus.SUBMITTED)
        ReviewFactory(assignment=assignment, label=LONG_LABEL, time_spent_seconds=754)
        WebhookDelivery.objects.create(
            webhook=webhook,
            event="decision.final",
            payload={"decision": {"id": n}},
            status=DeliveryStatus.FAILED,
            attempts=7,
            last_status_code=503,
            last_error=LONG_ERROR,
        )
        Export.objects.create(kind="case", prediction=prediction, requested_by=compliance_officer, row_count=12_345)
        BiasAuditFactory(
            version=version, population=AuditPopulation.DECISIONS, sensitive_attributes=["sex", "age_band"]
        )
        event = ledger_append(
            event_type="promotion.gate_overridden",
            object_type="models_registry.promotionrequest",
            object_id=n,
            payload={"reason": LONG_ERROR},
            actor=reviewer,
        )
    RetrainingJob.objects.create(
        model=version.model, base_version=version, requested_by=compliance_officer, status=JobStatus.RUNNING
    )
    DriftCheck.objects.create(
        model=version.model,
        version=version,
        reference_words="the production version's training set of 48,000 applications",
        window_days=7,
        threshold=0.2,
        recent_count=123_456,
        verdict="drifted",
        max_psi=0.31,
    )
    return [
        ("case-trail", reverse("admin:case", args=[prediction.pk])),
        ("case-record", reverse("admin:reviews_prediction_change", args=[prediction.pk])),
        ("ledger-event", reverse("admin:audits_decisionevent_change", args=[event.pk])),
        ("model-page", reverse("admin:models_registry_mlmodel_change", args=[version.model.pk])),
    ]


def _changelists_open_to(user) -> list[tuple[str, str]]:
    request = RequestFactory().get("/admin/")
    request.user = user
    return sorted(
        (f"{model._meta.app_label}-{model._meta.model_name}", reverse(admin_url))
        for model, model_admin in site._registry.items()
        if model_admin.has_view_permission(request)
        for admin_url in [f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"]
    )


def test_the_dashboard_every_list_and_a_cases_pages_fit_a_1280_px_screen(
    browser, live_server, screenshot, compliance_officer
):
    detail_pages = _console_rows(compliance_officer)
    pages = [("dashboard", reverse("admin:index")), *_changelists_open_to(compliance_officer), *detail_pages]
    assert len(pages) > 12, pages
    watched = WatchedPage(browser, live_server, compliance_officer)
    page = watched.page
    assert page.viewport_size["width"] == WIDTH

    too_wide = {}
    for number, (name, url) in enumerate(pages, start=1):
        watched.open(url)
        page.wait_for_load_state("networkidle")
        screenshot(page, f"console-fits-{number:02d}-{name}")
        measured = page.evaluate(MEASURE)
        if measured["page"] > WIDTH or measured["innerOverflow"] > 0:
            too_wide[name] = measured
    assert too_wide == {}, too_wide
    watched.assert_nothing_refused()
