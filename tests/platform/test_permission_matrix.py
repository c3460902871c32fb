"""A permission matrix that cannot drift: every URL pattern of the project, requested as every persona.

The patterns come from the resolver, so a new endpoint cannot be missed: a pattern that is not in ``MATRIX`` fails
the test until someone decides, in this one table, who may reach it. Each entry gives the status each persona
gets for a GET (and, for writes, a POST with an empty body: the answer then shows whether the request got past
authentication and authorisation: 400, or 415 where only JSON is read, mean "allowed, but the body is wrong").

Personas, in column order: anonymous, an inactive account, the ML engineer who owns the model, an ML engineer of
another team, a reviewer, an adjudicator, a compliance officer, an administrator. API paths are requested with an
API token (as scripts do), pages with a logged-in session.
"""

from dataclasses import dataclass

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from knox.models import AuthToken
from rest_framework.test import APIClient

from audits.ledger import ledger_append
from audits.models import DriftCheck, RetrainingJob
from audits.services.bias_audits import audit_policy_update
from audits.services.exports import export_request, export_run
from audits.services.ledger_checks import ledger_check_request, ledger_check_run
from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import AssignmentStatus, TaskStatus
from reviews.models import Webhook, WebhookDelivery
from tests.audits.factories import BiasAuditFactory
from tests.factories import UserFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory, PromotionRequestFactory
from tests.reviews.factories import (
    AssignmentFactory,
    DecisionFactory,
    PredictionFactory,
    ReviewFactory,
    ReviewTaskFactory,
    RoutingPolicyFactory,
)

PERSONAS = ("anonymous", "inactive", "owner", "other_team", "reviewer", "adjudicator", "compliance", "admin")


@dataclass(frozen=True)
class Expect:
    """Statuses per persona, in PERSONAS order, for GET and (optionally) POST with an empty body."""

    get: tuple[int, ...]
    post: tuple[int, ...] | None = None


def row(codes: str) -> tuple[int, ...]:
    statuses = tuple(int(code) for code in codes.split())
    assert len(statuses) == len(PERSONAS), codes
    return statuses


# --- who gets what, by kind of page --------------------------------------------------------------------------
# Console (Django admin): people without staff status are sent to the console's login page (302); compliance
# officers read what their role lets them view; governed records are read-only for everyone, administrators
# included (403 on add and delete). Only administrators manage users, groups, tokens, schedules and lockouts.
CONSOLE_READ = row("302 302 302 302 302 302 200 200")
CONSOLE_ADMIN_ONLY = row("302 302 302 302 302 302 403 200")
CONSOLE_NOBODY = row("302 302 302 302 302 302 403 403")
LOGIN_PAGE = row("200 200 200 200 200 200 200 200")


def console_model(
    path: str, *, officer_reads: bool, admin_adds: bool, admin_deletes: bool, versions: bool = True
) -> dict[str, Expect]:
    """The standard console pages of one registered model (ids filled in by ``fill``)."""
    read = CONSOLE_READ if officer_reads else CONSOLE_ADMIN_ONLY
    entries = {
        f"admin/{path}/": Expect(read),
        f"admin/{path}/add/": Expect(CONSOLE_ADMIN_ONLY if admin_adds else CONSOLE_NOBODY),
        f"admin/{path}/<path:object_id>/history/": Expect(read),
        f"admin/{path}/<path:object_id>/delete/": Expect(CONSOLE_ADMIN_ONLY if admin_deletes else CONSOLE_NOBODY),
        f"admin/{path}/<path:object_id>/change/": Expect(read),
        # The bare object URL redirects to its change page.
        f"admin/{path}/<path:object_id>/": Expect(row("302 302 302 302 302 302 302 302")),
    }
    if versions:
        entries[f"admin/{path}/^([^/]+)/history/([^/]+)/$"] = Expect(read)
    return entries


PLATFORM_ADMIN_MODELS = {
    "auth/group": dict(officer_reads=False, admin_adds=True, admin_deletes=True, versions=False),
    "auth/user": dict(officer_reads=False, admin_adds=True, admin_deletes=True, versions=False),
    "knox/authtoken": dict(officer_reads=False, admin_adds=True, admin_deletes=True, versions=False),
    "django_celery_beat/periodictask": dict(officer_reads=False, admin_adds=True, admin_deletes=True, versions=False),
    "django_celery_beat/clockedschedule": dict(
        officer_reads=False, admin_adds=True, admin_deletes=True, versions=False
    ),
    "django_celery_beat/crontabschedule": dict(
        officer_reads=False, admin_adds=True, admin_deletes=True, versions=False
    ),
    "django_celery_beat/solarschedule": dict(officer_reads=False, admin_adds=True, admin_deletes=True, versions=False),
    "django_celery_beat/intervalschedule": dict(
        officer_reads=False, admin_adds=True, admin_deletes=True, versions=False
    ),
    # Lockouts: administrators unlock by deleting attempts; nobody forges one by hand.
    "axes/accessattempt": dict(officer_reads=False, admin_adds=False, admin_deletes=True, versions=False),
    "axes/accesslog": dict(officer_reads=False, admin_adds=False, admin_deletes=True, versions=False),
    "axes/accessfailurelog": dict(officer_reads=False, admin_adds=False, admin_deletes=True, versions=False),
}
GOVERNED_ADMIN_MODELS = {
    "models_registry/mlmodel": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "models_registry/modelversion": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "models_registry/promotionrequest": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "reviews/routingpolicy": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "reviews/prediction": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "reviews/reviewtask": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "reviews/assignment": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "reviews/review": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "reviews/decision": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "reviews/webhook": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "reviews/webhookdelivery": dict(officer_reads=True, admin_adds=False, admin_deletes=False, versions=False),
    "audits/decisionevent": dict(officer_reads=True, admin_adds=False, admin_deletes=False, versions=False),
    "audits/biasaudit": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "audits/retrainingjob": dict(officer_reads=True, admin_adds=False, admin_deletes=False),
    "audits/driftcheck": dict(officer_reads=True, admin_adds=False, admin_deletes=False, versions=False),
    # Exports are asked for through their own page; add redirects there (302) for those who may export.
    "audits/export": dict(officer_reads=True, admin_adds=True, admin_deletes=False),
}
EXPORT_ADD = "admin/audits/export/add/"  # overridden below

MATRIX: dict[str, Expect] = {
    # Public and personal pages.
    "": Expect(row("302 302 200 200 302 302 302 302")),
    "healthz": Expect(row("200 200 200 200 200 200 200 200"), post=row("405 405 405 405 405 405 405 405")),
    "accounts/login/": Expect(row("200 200 302 302 302 302 302 302")),
    "accounts/logout/": Expect(row("405 405 405 405 405 405 405 405"), post=row("302 302 302 302 302 302 302 302")),
    # Console pages of our own.
    "admin/": Expect(CONSOLE_READ),
    "admin/login/": Expect(row("200 200 200 200 200 200 302 302")),
    "admin/logout/": Expect(row("302 302 302 302 302 302 405 405")),
    "admin/password_change/": Expect(row("302 302 302 302 302 302 200 200")),
    "admin/password_change/done/": Expect(row("302 302 302 302 302 302 200 200")),
    "admin/autocomplete/": Expect(row("302 302 302 302 302 302 403 403")),
    "admin/jsi18n/": Expect(row("302 302 302 302 302 302 200 200")),
    "admin/r/<path:content_type_id>/<path:object_id>/": Expect(row("302 302 302 302 302 302 404 404")),
    "admin/^(?P<app_label>auth|knox|django_celery_beat|axes|models_registry|reviews|audits)/$": Expect(
        row("302 302 302 302 302 302 200 200")
    ),
    "admin/(?P<url>.*)$": Expect(row("302 302 302 302 302 302 404 404")),
    "admin/cases/<int:prediction_id>/": Expect(CONSOLE_READ),
    # Appeals are an adjudicator's call; the console's appeal page is for those who are also staff.
    "admin/decisions/<int:decision_id>/appeal/": Expect(CONSOLE_ADMIN_ONLY),
    "admin/ledger/": Expect(CONSOLE_READ),
    "admin/ledger/head.json": Expect(CONSOLE_READ),
    "admin/exports/new/": Expect(CONSOLE_READ),
    "admin/exports/<int:export_id>/download/": Expect(row("302 302 302 302 302 302 200 200")),
    "admin/auth/user/<id>/password/": Expect(CONSOLE_ADMIN_ONLY),
    "admin/reviews/routingpolicy/<int:policy_id>/stop-switch/": Expect(CONSOLE_READ),
    # Approve or reject one request from its page: POST only, for those who decide promotions.
    "admin/models_registry/promotionrequest/<int:request_id>/decide/": Expect(
        row("302 302 302 302 302 302 405 405"), post=row("302 302 302 302 302 302 302 302")
    ),
    # Overriding a failing gate is an administrator's call alone.
    "admin/models_registry/promotionrequest/<int:request_id>/override-gate/": Expect(
        row("302 302 302 302 302 302 405 405"), post=row("302 302 302 302 302 302 403 302")
    ),
    **{
        entry: expect
        for path, flags in {**PLATFORM_ADMIN_MODELS, **GOVERNED_ADMIN_MODELS}.items()
        for entry, expect in console_model(path, **flags).items()
    },
    # Adding an export opens the export request page (a redirect) for those who may export.
    EXPORT_ADD: Expect(row("302 302 302 302 302 302 302 302")),
    # Asking for a bias audit opens its request page (a redirect) for those who may audit; its CSV and the
    # "run again" button follow the audit's page.
    "admin/audits/biasaudit/add/": Expect(row("302 302 302 302 302 302 302 302")),
    "admin/bias-audits/new/": Expect(row("302 302 302 302 302 302 200 200")),
    "admin/bias-audits/<int:audit_id>/csv/": Expect(row("302 302 302 302 302 302 200 200")),
    "admin/bias-audits/<int:audit_id>/run-again/": Expect(
        row("302 302 302 302 302 302 405 405"), post=row("302 302 302 302 302 302 302 302")
    ),
    # Asking for a retraining opens its request page (a redirect); compliance and administrators may retrain any
    # model they read, ML engineers their own (through the API).
    "admin/audits/retrainingjob/add/": Expect(row("302 302 302 302 302 302 302 302")),
    "admin/retraining-jobs/new/": Expect(row("302 302 302 302 302 302 200 200")),
    # The threshold recommendation: read by whoever reads routing policies; applying it needs a reason (an empty
    # POST shows the form again with its errors).
    "admin/models/<int:model_id>/threshold-recommendation/": Expect(
        row("302 302 302 302 302 302 200 200"), post=row("302 302 302 302 302 302 200 200")
    ),
    # Bias audit policies: compliance officers set them (with a reason, historised); nobody deletes one.
    **console_model("audits/auditpolicy", officer_reads=True, admin_adds=True, admin_deletes=False),
    "admin/audits/auditpolicy/add/": Expect(row("302 302 302 302 302 302 200 200")),
    # The API. Tokens of inactive accounts are refused like no token (401). Another team's model and its records
    # answer 404, exactly like names nobody registered.
    "api/v1/auth/token/": Expect(row("405 405 405 405 405 405 405 405"), post=row("400 400 400 400 400 400 400 400")),
    "api/v1/auth/token/revoke/": Expect(
        row("401 401 405 405 405 405 405 405"), post=row("401 401 204 204 204 204 204 204")
    ),
    "api/v1/models/": Expect(row("401 401 200 200 403 403 200 200"), post=row("401 401 400 400 403 403 403 400")),
    "api/v1/models/<slug:name>/": Expect(row("401 401 200 404 403 403 200 200")),
    "api/v1/models/<slug:name>/versions/": Expect(
        row("401 401 200 404 403 403 200 200"), post=row("401 401 400 404 403 403 403 400")
    ),
    "api/v1/models/<slug:name>/versions/<int:number>/": Expect(row("401 401 200 404 403 403 200 200")),
    "api/v1/models/<slug:name>/versions/<int:number>/promotion-requests/": Expect(
        row("401 401 200 404 403 403 200 200"), post=row("401 401 400 404 403 403 403 400")
    ),
    "api/v1/promotion-requests/<int:request_id>/": Expect(row("401 401 200 404 403 403 200 200")),
    # Predictions are only POSTed here; a GET is 405 for everybody logged in.
    "api/v1/models/<slug:name>/predictions/": Expect(
        row("401 401 405 405 405 405 405 405"), post=row("401 401 415 404 403 403 403 415")
    ),
    "api/v1/predictions/": Expect(row("401 401 200 200 403 403 200 200")),
    "api/v1/predictions/<int:pk>/": Expect(row("401 401 200 404 403 403 200 200")),
    "api/v1/predictions/<int:pk>/outcome/": Expect(
        row("401 401 405 405 405 405 405 405"), post=row("401 401 415 404 403 403 403 415")
    ),
    "api/v1/decisions/": Expect(row("401 401 200 200 403 403 200 200")),
    "api/v1/^webhooks/$": Expect(row("401 401 200 200 403 403 200 200"), post=row("401 401 400 400 403 403 403 400")),
    # A webhook is its owner's: anybody else's is a 404, administrators included (they see it in the console).
    "api/v1/^webhooks/(?P<pk>[^/.]+)/$": Expect(row("401 401 200 404 403 403 404 404")),
    # Exports are their requester's (and an administrator's).
    "api/v1/exports/": Expect(row("401 401 403 403 403 403 200 200"), post=row("401 401 403 403 403 403 400 400")),
    "api/v1/exports/<int:pk>/": Expect(row("401 401 403 403 403 403 200 200")),
    # Bias audits follow their model: its team and compliance read and request them; another team sees a 404.
    "api/v1/models/<slug:name>/audits/": Expect(
        row("401 401 200 404 403 403 200 200"), post=row("401 401 400 404 403 403 400 400")
    ),
    "api/v1/audits/<int:pk>/": Expect(row("401 401 200 404 403 403 200 200")),
    # Retraining follows its model like audits. The owner's job is queued (it will fail: the world's version has
    # no model file); while it is, everybody else's request is a 409 naming it.
    "api/v1/models/<slug:name>/retraining-jobs/": Expect(
        row("401 401 200 404 403 403 200 200"), post=row("401 401 202 404 403 403 409 409")
    ),
    "api/v1/retraining-jobs/<int:pk>/": Expect(row("401 401 200 404 403 403 200 200")),
    # Training data is its model's team's (and an administrator's): compliance reads decisions in the console.
    "api/v1/models/<slug:name>/training-data/": Expect(row("401 401 200 404 403 403 403 200")),
    "api/v1/models/<slug:name>/threshold-recommendation/": Expect(
        row("401 401 200 404 403 403 200 200"), post=row("401 401 405 405 405 405 405 405")
    ),
    "api/v1/exports/<int:pk>/download/": Expect(row("401 401 403 403 403 403 200 200")),
    # The schema and its docs describe the API, not its data: public, like the docs page that loads the schema.
    # A token that is no longer valid is refused wherever it is sent.
    "api/v1/schema/": Expect(row("200 401 200 200 200 200 200 200")),
    "api/v1/docs/": Expect(row("200 401 200 200 200 200 200 200")),
    # The reviewer pages: reviewers and adjudicators only; somebody else's assignment or review is a 404.
    "review/": Expect(row("302 302 403 403 200 200 403 200")),
    "review/next/": Expect(row("302 302 403 403 302 302 403 302"), post=row("302 302 403 403 302 302 403 302")),
    "review/mine/": Expect(row("302 302 403 403 200 200 403 200")),
    "review/assignments/<int:pk>/": Expect(row("302 302 403 403 200 404 403 404")),
    "review/assignments/<int:pk>/skip/": Expect(
        row("302 302 403 403 302 302 403 302"), post=row("302 302 403 403 302 404 403 404")
    ),
    "review/reviews/<int:pk>/correct/": Expect(row("302 302 403 403 200 404 403 404")),
    "review/adjudication/": Expect(row("302 302 403 403 403 200 403 200")),
    "review/adjudication/<int:task_pk>/": Expect(row("302 302 403 403 403 200 403 200")),
    "review/appeals/": Expect(row("302 302 403 403 403 200 403 200")),
    "review/appeals/<int:decision_id>/": Expect(row("302 302 403 403 403 200 403 200")),
    # The ML engineers' pages: ML engineers and administrators; a token is its holder's alone (404 for others).
    "engineer/": Expect(row("302 302 200 200 403 403 403 200")),
    "engineer/tokens/": Expect(row("302 302 200 200 403 403 403 200"), post=row("302 302 200 200 403 403 403 200")),
    "engineer/tokens/<slug:digest>/revoke/": Expect(
        row("302 302 200 404 403 403 403 404"), post=row("302 302 302 404 403 403 403 404")
    ),
}


def url_patterns(patterns=None, prefix: str = ""):
    """Every pattern of the project as its full route string."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def test_every_url_pattern_of_the_project_is_in_the_matrix():
    missing = sorted(set(url_patterns()) - set(MATRIX))
    stale = sorted(set(MATRIX) - set(url_patterns()))
    assert not missing, f"Decide who may reach these new URL patterns, in MATRIX: {missing}"
    assert not stale, f"These MATRIX entries no longer match a URL pattern: {stale}"


@pytest.fixture
def world(
    db, settings, tmp_path, ml_engineer, other_ml_engineer, reviewer_a, adjudicator, compliance_officer, admin_user
):
    """One of every record a URL can name, belonging to the personas as in real use."""
    settings.MEDIA_ROOT = tmp_path
    inactive = UserFactory(username="ivan_inactive", roles=[Role.ML_ENGINEER])
    model = MLModelFactory(name="credit", owner=ml_engineer)
    version = ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    candidate = ModelVersionFactory(model=model, number=2)
    promotion = PromotionRequestFactory(version=candidate, requester=ml_engineer)
    policy = RoutingPolicyFactory(model=model)
    prediction = PredictionFactory(version=version, model=model)
    task = ReviewTaskFactory(prediction=prediction)
    assignment = AssignmentFactory(task=task, reviewer=reviewer_a)
    earlier_task = ReviewTaskFactory(prediction=PredictionFactory(version=version, model=model), reviews_required=2)
    review = ReviewFactory(
        assignment=AssignmentFactory(task=earlier_task, reviewer=reviewer_a, status=AssignmentStatus.SUBMITTED)
    )
    escalated = ReviewTaskFactory(
        prediction=PredictionFactory(version=version, model=model), status=TaskStatus.ESCALATED
    )
    decision = DecisionFactory(prediction=PredictionFactory(version=version, model=model))
    webhook = Webhook.objects.create(owner=ml_engineer, url="https://example.org/h", events=["decision.final"])
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="decision.final", payload={})
    audit = BiasAuditFactory(version=version)
    job = RetrainingJob.objects.create(model=model, base_version=version, status="failed", error="Too few labels.")
    drift = DriftCheck.objects.create(
        model=model,
        version=version,
        reference_words="its first cases",
        window_days=7,
        threshold=0.25,
        recent_count=3,
        verdict="not compared",
    )
    audit_policy = audit_policy_update(model=model, actor=compliance_officer, reason="Stricter.", min_group_size=50)
    export = export_request(actor=compliance_officer, kind="case", format="csv", prediction=prediction)
    # Tasks are enqueued on commit, which never comes inside a test's transaction: run the work here.
    export_run(export=export)
    ledger_check_run(check=ledger_check_request(actor=compliance_officer))
    group = Group.objects.create(name="credit-risk-team")
    token = AuthToken.objects.create(user=ml_engineer)[0]
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    periodic = PeriodicTask.objects.create(name="probe", task="audits.dashboard_refresh", interval=every)
    attempt = AccessAttempt.objects.create(username="x", ip_address="127.0.0.1", failures_since_start=1)
    log = AccessLog.objects.create(username="x", ip_address="127.0.0.1")
    failure = AccessFailureLog.objects.create(username="x", ip_address="127.0.0.1")
    people = {
        "inactive": inactive,
        "owner": ml_engineer,
        "other_team": other_ml_engineer,
        "reviewer": reviewer_a,
        "adjudicator": adjudicator,
        "compliance": compliance_officer,
        "admin": admin_user,
    }
    objects = {
        "auth/group": group,
        "auth/user": ml_engineer,
        "knox/authtoken": token,
        "django_celery_beat/periodictask": periodic,
        "django_celery_beat/clockedschedule": ClockedSchedule.objects.create(clocked_time=timezone.now()),
        "django_celery_beat/crontabschedule": CrontabSchedule.objects.create(),
        "django_celery_beat/solarschedule": SolarSchedule.objects.create(event="sunrise", latitude=0, longitude=0),
        "django_celery_beat/intervalschedule": every,
        "axes/accessattempt": attempt,
        "axes/accesslog": log,
        "axes/accessfailurelog": failure,
        "models_registry/mlmodel": model,
        "models_registry/modelversion": version,
        "models_registry/promotionrequest": promotion,
        "reviews/routingpolicy": policy,
        "reviews/prediction": prediction,
        "reviews/reviewtask": task,
        "reviews/assignment": assignment,
        "reviews/review": review,
        "reviews/decision": decision,
        "reviews/webhook": webhook,
        "reviews/webhookdelivery": delivery,
        "audits/decisionevent": ledger_append(
            event_type="model.updated", object_type="models_registry.mlmodel", object_id=model.pk, payload={}
        ),
        "audits/export": export,
        "audits/biasaudit": audit,
        "audits/retrainingjob": job,
        "audits/driftcheck": drift,
        "audits/auditpolicy": audit_policy,
    }
    ids = {
        "prediction_id": prediction.pk,
        "decision_id": decision.pk,
        "export_id": export.pk,
        "audit_id": audit.pk,
        "job_id": job.pk,
        "model_id": model.pk,
        "policy_id": policy.pk,
        "name": model.name,
        "number": version.number,
        "request_id": promotion.pk,
        "task_pk": escalated.pk,
        "webhook": webhook.pk,
        "assignment": assignment.pk,
        "review": review.pk,
        "user": ml_engineer.pk,
        "content_type_object": (model, model.pk),
    }
    clients = _clients(people)
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    return people, objects, ids, clients


def fill(route: str, objects: dict, ids: dict) -> str:
    """The concrete path of a route, naming the world's records."""
    from django.contrib.contenttypes.models import ContentType

    for path, obj in objects.items():
        prefix = f"admin/{path}/"
        standard = "<path:object_id>" in route or "history/([^/]+)" in route
        if route.startswith(prefix) and standard:
            history = obj.history.order_by("history_id").first() if hasattr(obj, "history") else None
            route = route.replace("^([^/]+)/history/([^/]+)/$", f"{obj.pk}/history/{history.pk if history else 0}/")
            return "/" + route.replace("<path:object_id>", str(obj.pk))
    model, model_pk = ids["content_type_object"]
    replacements = {
        "<path:content_type_id>/<path:object_id>": f"{ContentType.objects.get_for_model(model).pk}/{model_pk}",
        "<int:prediction_id>": ids["prediction_id"],
        "<int:decision_id>": ids["decision_id"],
        "<int:export_id>": ids["export_id"],
        "<int:audit_id>": ids["audit_id"],
        "<int:model_id>": ids["model_id"],
        "<int:policy_id>": ids["policy_id"],
        "<slug:name>": ids["name"],
        "<slug:digest>": objects["knox/authtoken"].digest,
        "<int:number>": ids["number"],
        "<int:request_id>": ids["request_id"],
        "<int:task_pk>": ids["task_pk"],
        "<id>": ids["user"],
        "^(?P<app_label>auth|knox|django_celery_beat|axes|models_registry|reviews|audits)/$": "reviews/",
        "(?P<url>.*)$": "no-such-page/",
        "^webhooks/$": "webhooks/",
        "^webhooks/(?P<pk>[^/.]+)/$": f"webhooks/{ids['webhook']}/",
    }
    if route.startswith("api/v1/exports/"):
        replacements["<int:pk>"] = ids["export_id"]
    elif route.startswith("api/v1/audits/"):
        replacements["<int:pk>"] = ids["audit_id"]
    elif route.startswith("api/v1/retraining-jobs/"):
        replacements["<int:pk>"] = ids["job_id"]
    elif route.startswith("api/v1/predictions/"):
        replacements["<int:pk>"] = ids["prediction_id"]
    elif route.startswith("review/assignments/"):
        replacements["<int:pk>"] = ids["assignment"]
    elif route.startswith("review/reviews/"):
        replacements["<int:pk>"] = ids["review"]
    for placeholder, value in replacements.items():
        route = route.replace(placeholder, str(value))
    return "/" + route


def _clients(people: dict) -> dict[str, tuple[APIClient, Client]]:
    """Per persona, an API client with a token of theirs and a browser-like client logged in as them."""
    clients = {}
    for persona in PERSONAS:
        user = people.get(persona)
        api, browser = APIClient(), Client()
        if user is not None:
            # Tokens and sessions are made while the account is active; ``world`` deactivates "inactive" after.
            api.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=user)[1]}")
            browser.force_login(user)
        clients[persona] = (api, browser)
    return clients


# Routes that end the session or revoke the token they are called with: each request gets fresh clients.
SESSION_ENDING = frozenset({"accounts/logout/", "admin/logout/", "api/v1/auth/token/revoke/"})


def test_each_persona_gets_the_status_the_matrix_expects(world):
    people, objects, ids, shared_clients = world
    mismatches = []
    for route, expect in sorted(MATRIX.items()):
        path = fill(route, objects, ids)
        for method, expected in (("GET", expect.get), ("POST", expect.post)):
            if expected is None:
                continue
            got = []
            for persona in PERSONAS:
                clients = _clients(people) if route in SESSION_ENDING else shared_clients
                api, browser = clients[persona]
                client = api if path.startswith("/api/") else browser
                got.append((client.get(path) if method == "GET" else client.post(path, {})).status_code)
            if tuple(got) != expected:
                diff = {p: (e, g) for p, e, g in zip(PERSONAS, expected, got, strict=True) if e != g}
                mismatches.append(f"{method} {route}: expected/got {diff}")
    assert not mismatches, "\n".join(mismatches)
