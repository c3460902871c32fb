"""The dashboard (the console's index): per model figures over a period, charts, in a fixed number of queries."""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from audits.choices import AuditPopulation, AuditVerdict
from audits.models import DashboardDay
from audits.selectors.bias_audits import bias_audit_standing_per_model
from audits.selectors.dashboard import dashboard_figures
from audits.services import dashboard as dashboard_service
from audits.services.dashboard import dashboard_refresh_recent, dashboard_refresh_when_stale
from reviews.choices import AssignmentStatus, DecisionSource, Route, TaskStatus
from reviews.models import Decision, RoutingPolicy
from tests.audits.factories import BiasAuditFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory
from tests.reviews.factories import AssignmentFactory, PredictionFactory, ReviewFactory, ReviewTaskFactory


def _case(model_version, *, label, final=None, source=DecisionSource.AUTO, age_days=1.0, hours_to_decide=0.0, **kw):
    created = timezone.now() - timedelta(days=age_days)
    prediction = PredictionFactory(version=model_version, predicted_label=label, created_at=created, **kw)
    if final is not None:
        Decision.objects.create(
            prediction=prediction,
            model=prediction.model,
            final_label=final,
            source=source,
            decided_at=created + timedelta(hours=hours_to_decide),
        )
    return prediction


def _reviews(prediction, labels, reviewers, *, age_days=1.0):
    task = ReviewTaskFactory(
        prediction=prediction, status=TaskStatus.DECIDED, created_at=timezone.now() - timedelta(days=age_days)
    )
    for label, reviewer in zip(labels, reviewers, strict=True):
        assignment = AssignmentFactory(task=task, reviewer=reviewer, status=AssignmentStatus.SUBMITTED)
        ReviewFactory(assignment=assignment, label=label)
    return task


@pytest.fixture
def credit_cases(db, reviewer_a, reviewer_b):
    """Ten cases of one model in the last week, two older ones, and a second model with none."""
    first = PredictionFactory(predicted_label="approve", created_at=timezone.now() - timedelta(days=60))
    version, model = first.version, first.model
    RoutingPolicy.objects.create(model=model, stop_switch_on=True)
    MLModelFactory(name="idle-model")
    # Automatic decisions: three.
    for _ in range(3):
        _case(version, label="approve", final="approve", route=Route.AUTO)
    # Human decisions: four, one overriding the model (deny -> approve).
    human = [
        _case(version, label="deny", final="deny", source=DecisionSource.CONSENSUS, hours_to_decide=1),
        _case(version, label="deny", final="approve", source=DecisionSource.CONSENSUS, hours_to_decide=2),
        _case(version, label="approve", final="approve", source=DecisionSource.ADJUDICATION, hours_to_decide=3),
        _case(version, label="approve", final="approve", source=DecisionSource.CONSENSUS, hours_to_decide=30),
    ]
    # QA samples: two reviewed cases sampled from confident ones; the model was right on one. With them, the
    # hours to a human decision are 1, 2, 2, 2, 3 and 30: a median of 2.
    for final in ("approve", "deny"):
        _case(
            version, label="approve", final=final, source=DecisionSource.CONSENSUS, is_qa_sample=True, hours_to_decide=2
        )
    # Outcomes reported on two auto cases: one right, one wrong.
    _case(version, label="approve", final="approve", outcome_label="approve")
    # Reviewer agreement: the two reviewers agree on two cases and disagree on one.
    _reviews(human[0], ["deny", "deny"], [reviewer_a, reviewer_b])
    _reviews(human[1], ["approve", "approve"], [reviewer_a, reviewer_b])
    _reviews(human[2], ["approve", "deny"], [reviewer_a, reviewer_b])
    # The queue now: one open task on time, one past due (an SLA breach), and an open task from long ago.
    ReviewTaskFactory(prediction=_case(version, label="deny", outcome_label="approve"))
    ReviewTaskFactory(
        prediction=_case(version, label="deny"), status=TaskStatus.IN_REVIEW, due_at=timezone.now() - timedelta(hours=1)
    )
    ReviewTaskFactory(prediction=first, created_at=first.created_at)
    dashboard_refresh_recent(days=90)
    return model


def test_the_dashboard_figures_of_a_model_over_a_week(credit_cases):
    dashboard = dashboard_figures(period_days=7)

    figures = {m.name: m for m in dashboard.models}
    credit = figures[credit_cases.name]
    assert credit.volume == 12
    assert (credit.auto_decided, credit.human_decided) == (4, 6)
    assert credit.automation_rate == pytest.approx(4 / 10)
    assert credit.override_rate == pytest.approx(2 / 6)
    assert (credit.qa_correct, credit.qa_total) == (1, 2)
    assert (credit.outcome_correct, credit.outcome_total) == (1, 2)
    assert credit.queue_depth == 3
    assert credit.sla_breaches == 1
    # 60, 120, 120, 120, 180 and 1800 minutes: the median (120) falls in the 90-120 minute bucket, interpolated.
    assert credit.median_hours_to_decision == pytest.approx(110 / 60)
    assert credit.agreement_cases == 3
    # Six pairable labels (3 deny, 3 approve), one disagreeing case: alpha = 1 - 5 * 2 / (36 - 18).
    assert credit.agreement_alpha == pytest.approx(1 - 10 / 18)
    assert credit.stop_switch_on is True
    idle = figures["idle-model"]
    assert (idle.volume, idle.automation_rate, idle.stop_switch_on) == (0, None, None)
    assert dashboard.totals.volume == 12
    assert sum(day.volume for day in dashboard.days) == 12


def test_a_longer_period_takes_in_older_cases(credit_cases):
    credit = next(m for m in dashboard_figures(period_days=90).models if m.name == credit_cases.name)
    assert credit.volume == 13


def test_the_console_index_is_the_dashboard_with_its_charts(client, compliance_officer, credit_cases):
    client.force_login(compliance_officer)

    response = client.get(reverse("admin:index"), {"days": 7})

    assert response.status_code == 200
    html = response.content.decode()
    assert credit_cases.name in html
    assert "40.0 %" in html  # automation rate
    assert "33.3 %" in html  # human override rate
    assert html.count('<svg class="hitl-chart"') == 2
    assert '<strong class="hitl-stop">ON</strong>' in html
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html), "the console loads nothing from other hosts"


def test_an_unknown_period_shows_a_form_error_and_the_default_period(client, compliance_officer, credit_cases):
    client.force_login(compliance_officer)

    response = client.get(reverse("admin:index"), {"days": "12"})

    assert response.status_code == 200
    assert response.context["dashboard"].period_days == 30
    assert "Select a valid choice" in response.content.decode()


def test_the_dashboard_runs_twelve_queries_whatever_the_data(
    client, compliance_officer, credit_cases, django_assert_num_queries, reviewer_a, reviewer_b
):
    # Session, user, permissions, the rollup's freshness, the ledger standing (check and reviewer), the models
    # with their queue, the days, the audits with their thresholds, the latest drift checks, and the outcome
    # figures (cases and reviews).
    client.force_login(compliance_officer)
    with django_assert_num_queries(12):
        client.get(reverse("admin:index"))

    version = credit_cases.versions.get()
    for _ in range(15):
        prediction = _case(version, label="approve", final="deny", source=DecisionSource.CONSENSUS)
        _reviews(prediction, ["deny", "approve"], [reviewer_a, reviewer_b])
    for n in range(5):
        extra = MLModelFactory(name=f"extra-model-{n}")
        BiasAuditFactory(version=ModelVersionFactory(model=extra), key_ratio=0.9)
    BiasAuditFactory.create_batch(3, version=version, population=AuditPopulation.DECISIONS)
    dashboard_refresh_recent(days=90)

    with django_assert_num_queries(12):
        response = client.get(reverse("admin:index"), {"days": 90})
    assert "extra-model-4" in response.content.decode()
    assert response.content.decode().count('<svg class="hitl-trend"') == 6


def test_the_page_rebuilds_figures_that_are_not_fresh(client, compliance_officer, credit_cases):
    DashboardDay.objects.all().delete()
    client.force_login(compliance_officer)

    response = client.get(reverse("admin:index"), {"days": 7})

    credit = next(m for m in response.context["dashboard"].models if m.name == credit_cases.name)
    assert credit.volume == 12
    assert DashboardDay.objects.exists()


def test_a_refresh_replaces_the_days_it_covers_and_keeps_older_ones(credit_cases):
    old_days = set(DashboardDay.objects.filter(day__lt=timezone.localdate() - timedelta(days=10)).values_list("day"))
    PredictionFactory(version=credit_cases.versions.get())

    dashboard_refresh_recent(days=2)

    assert dashboard_figures(period_days=7).totals.volume == 13
    assert set(DashboardDay.objects.filter(day__lt=timezone.localdate() - timedelta(days=10)).values_list("day")) == (
        old_days
    )


def test_each_model_shows_its_latest_audit_verdict_and_the_trend_of_its_key_ratio(
    client, compliance_officer, credit_cases
):
    version = credit_cases.versions.get()
    now = timezone.now()
    for days_ago, ratio, passed in ((30, 0.91, True), (20, 0.84, True), (10, 0.72, False)):
        BiasAuditFactory(
            version=version,
            key_ratio=ratio,
            passed=passed,
            verdict=AuditVerdict.PASSED if passed else AuditVerdict.FAILED,
            finished_at=now - timedelta(days=days_ago),
            summary=[f"The audit {'passed' if passed else 'failed'} at {ratio}."],
        )
    # A newer audit of another population is the latest verdict, but a decisions ratio is not drawn on the line
    # of the model's ratio: its trend is its own.
    latest = BiasAuditFactory(
        version=version, population=AuditPopulation.DECISIONS, key_ratio=0.95, finished_at=now - timedelta(days=1)
    )
    client.force_login(compliance_officer)

    response = client.get(reverse("admin:index"))

    rows = {row.model_name: row for row in response.context["audit_rows"]}
    credit = rows[credit_cases.name]
    assert (credit.audit, credit.verdict_words) == (latest, "Passed")
    assert (credit.population_words, credit.key_ratio) == ("The final decisions", "0.95")
    assert rows["idle-model"].verdict_words == "Never audited" and rows["idle-model"].trend_svg == ""
    html = response.content.decode()
    assert reverse("admin:audits_biasaudit_change", args=[latest.pk]) in html
    assert html.count('<svg class="hitl-trend"') == 1
    BiasAuditFactory(
        version=version,
        population=AuditPopulation.DECISIONS,
        key_ratio=0.75,
        passed=False,
        verdict=AuditVerdict.FAILED,
        finished_at=now - timedelta(days=40),
    )
    trend = client.get(reverse("admin:index")).context["audit_rows"][0].trend_svg
    assert re.findall(r'<circle class="dot (\w+)"', trend) == ["fail", "pass"]
    assert "<title>threshold 0.8</title>" in trend


def test_the_audit_trend_keeps_only_each_model_s_last_audits_of_its_latest_population(credit_cases):
    version = credit_cases.versions.get()
    now = timezone.now()
    model_audits = [
        BiasAuditFactory(version=version, key_ratio=0.5 + n / 100, finished_at=now - timedelta(days=30 - n))
        for n in range(15)
    ]
    BiasAuditFactory(version=version, population=AuditPopulation.DECISIONS, finished_at=now - timedelta(days=40))

    standing = bias_audit_standing_per_model(model_ids=[credit_cases.pk], trend_length=12)[credit_cases.pk]

    assert standing.latest == model_audits[-1]
    assert standing.trend == model_audits[3:]
    assert standing.parity_ratio_min == 0.8


def test_a_case_that_just_arrived_is_counted_once_todays_rollup_is_a_minute_old(
    client, compliance_officer, credit_cases
):
    client.force_login(compliance_officer)
    before = client.get(reverse("admin:index")).context["dashboard"].totals.volume
    DashboardDay.objects.update(refreshed_at=timezone.now() - timedelta(minutes=2))
    PredictionFactory(version=credit_cases.versions.get())

    response = client.get(reverse("admin:index"))

    assert response.context["dashboard"].totals.volume == before + 1
    assert timezone.now() - response.context["dashboard"].refreshed_at < timedelta(minutes=1)


def test_pages_loaded_while_a_rebuild_is_on_its_way_ask_for_it_once(credit_cases, monkeypatch):
    # A real worker rebuilds in the background: until it has, every officer's page load would ask again.
    cache.clear()
    dashboard_refresh_recent(days=1)
    asked = []
    monkeypatch.setattr(dashboard_service.dashboard_refresh_task, "delay", lambda **kwargs: asked.append(kwargs))

    dashboard_refresh_when_stale(window_days=90)
    assert asked == []
    DashboardDay.objects.update(refreshed_at=timezone.now() - timedelta(minutes=2))
    for _ in range(3):
        dashboard_refresh_when_stale(window_days=90)
    DashboardDay.objects.update(refreshed_at=timezone.now() - timedelta(minutes=20))
    dashboard_refresh_when_stale(window_days=90)

    assert asked == [{"days": 1}, {"days": 90}]
