"""Console changelists: a constant, small number of queries whatever the page size, and no full-table count."""

import pytest
from django.contrib.admin.sites import site
from django.db import connection
from django.urls import reverse

from audits.ledger import LedgerEntry, ledger_append_many
from audits.models import Export
from hitl_platform.admin_site import EstimatedCountPaginator
from reviews.choices import AssignmentStatus, DecisionSource
from reviews.models import Decision, Prediction, RoutingPolicy, Webhook, WebhookDelivery
from tests.reviews.factories import (
    AssignmentFactory,
    DecisionFactory,
    PredictionFactory,
    ReviewFactory,
    ReviewTaskFactory,
    RoutingPolicyFactory,
)

# Each changelist's exact number of queries on SQLite, whatever the page size (session, user, permissions, the
# page's rows, their related rows, the filters' choices). PostgreSQL adds one: the row estimate read from pg_class
# (EstimatedCountPaginator), where SQLite counts.
CHANGELIST_QUERIES = {
    "reviews_routingpolicy": 5,
    "reviews_prediction": 6,
    "reviews_reviewtask": 6,
    "reviews_assignment": 5,
    "reviews_review": 5,
    "reviews_decision": 6,
    "reviews_webhook": 5,
    "reviews_webhookdelivery": 5,
    "audits_decisionevent": 5,
    "audits_export": 5,
}
CHANGELISTS = list(CHANGELIST_QUERIES)
ROWS = 12


@pytest.fixture
def many_rows(db, compliance_officer, reviewer_a):
    """A dozen rows in every console list, spread over three models."""
    versions = [PredictionFactory().version for _ in range(3)]
    for version in versions:
        RoutingPolicyFactory(model=version.model)
    webhook = Webhook.objects.create(
        owner=versions[0].model.owner, url="https://example.org/hook", events=["decision.final"], secret="s" * 32
    )
    for n in range(ROWS):
        version = versions[n % 3]
        decision = DecisionFactory(prediction__version=version, source=DecisionSource.AUTO)
        task = ReviewTaskFactory(prediction=PredictionFactory(version=version))
        assignment = AssignmentFactory(task=task, reviewer=reviewer_a, status=AssignmentStatus.SUBMITTED)
        ReviewFactory(assignment=assignment)
        WebhookDelivery.objects.create(
            webhook=webhook, event="decision.final", payload={"decision": {"id": decision.pk}}
        )
        Export.objects.create(kind="case", prediction=decision.prediction, requested_by=compliance_officer)
    ledger_append_many([LedgerEntry("decision.made", "reviews.decision", n, {}) for n in range(ROWS)])


def _model_admin(name: str):
    app_label, model_name = name.split("_")
    return next(
        admin
        for model, admin in site._registry.items()
        if (model._meta.app_label, model._meta.model_name) == (app_label, model_name)
    )


@pytest.mark.parametrize("name", CHANGELISTS)
def test_each_changelist_runs_the_same_few_queries_for_any_page_size(
    client, compliance_officer, many_rows, monkeypatch, name, django_assert_num_queries
):
    client.force_login(compliance_officer)
    url = reverse(f"admin:{name}_changelist")
    for per_page in (3, ROWS * 2):
        monkeypatch.setattr(_model_admin(name), "list_per_page", per_page)
        with django_assert_num_queries(_on_this_database(CHANGELIST_QUERIES[name])):
            response = client.get(url)
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("name", "params", "queries"),
    [
        ("reviews_decision", {"source": "auto", "model__id__exact": "1", "within": "7"}, 6),
        ("reviews_prediction", {"route": "review", "within": "30", "q": "application-3"}, 6),
        ("reviews_reviewtask", {"status": "open", "q": "3"}, 6),
        ("audits_decisionevent", {"event_type": "decision.made", "q": "reviews.decision:3"}, 5),
    ],
)
def test_filtered_and_searched_changelists_run_their_few_queries(
    client, compliance_officer, many_rows, name, params, queries, django_assert_num_queries
):
    client.force_login(compliance_officer)
    with django_assert_num_queries(_on_this_database(queries)):
        response = client.get(reverse(f"admin:{name}_changelist"), params)
    assert response.status_code == 200


def test_a_search_for_a_delivery_by_a_malformed_id_reads_no_rows(
    client, compliance_officer, many_rows, django_assert_num_queries
):
    # Session, user and permissions only: a search term that cannot be a delivery's UUID matches nothing unread.
    client.force_login(compliance_officer)
    with django_assert_num_queries(3):
        response = client.get(reverse("admin:reviews_webhookdelivery_changelist"), {"status": "pending", "q": "x"})
    assert response.status_code == 200


def _on_this_database(sqlite_queries: int) -> int:
    return sqlite_queries + (connection.vendor == "postgresql")


def test_search_finds_a_decision_by_its_cases_external_id(client, compliance_officer, many_rows):
    decision = Decision.objects.select_related("prediction").first()
    client.force_login(compliance_officer)

    response = client.get(reverse("admin:reviews_decision_changelist"), {"q": decision.prediction.external_id})

    assert list(response.context["cl"].result_list) == [decision]


def test_changelists_never_count_the_whole_table(client, compliance_officer, many_rows):
    client.force_login(compliance_officer)
    for name in CHANGELISTS:
        response = client.get(reverse(f"admin:{name}_changelist"))
        assert response.context["cl"].full_result_count is None, name


@pytest.mark.postgres
def test_an_unfiltered_list_takes_the_planners_row_estimate(many_rows):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviews_prediction")
    paginator = EstimatedCountPaginator(Prediction.objects.order_by("-id"), 10)
    paginator.exact_below = 1

    assert paginator.count == Prediction.objects.count()
    assert paginator.is_estimate


@pytest.mark.postgres
def test_a_filtered_list_takes_the_planners_estimate_for_its_filter(many_rows):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviews_routingpolicy")
    paginator = EstimatedCountPaginator(RoutingPolicy.objects.filter(stop_switch_on=False).order_by("id"), 10)
    paginator.exact_below = 1

    assert paginator.count == 3
    assert paginator.is_estimate


def test_small_lists_are_counted_exactly(many_rows):
    paginator = EstimatedCountPaginator(Prediction.objects.order_by("-id"), 10)

    assert paginator.count == Prediction.objects.count()
    assert not paginator.is_estimate
