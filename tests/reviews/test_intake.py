"""Prediction intake through the API: routing, decisions, review tasks, history, ledger, idempotency, batches."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audits.ledger import ledger_verify
from audits.models import DecisionEvent
from models_registry.choices import RiskTier, Stage
from reviews.choices import DecisionSource, Route, TaskStatus
from reviews.models import Decision, Prediction, ReviewTask, Webhook, WebhookDelivery
from reviews.services.policies import routing_policy_get_or_create_default, routing_policy_update
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory


@pytest.fixture
def credit_model(ml_engineer):
    model = MLModelFactory(name="credit-scoring", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    return model


@pytest.fixture
def api(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


def url(model) -> str:
    return f"/api/v1/models/{model.name}/predictions/"


def item(external_id: str = "application-1", confidence: float = 0.93, label: str = "approve", **extra) -> dict:
    return {
        "external_id": external_id,
        "features": {"credit_amount": 4200.0, "duration": 24, "age": 41},
        "attributes": {"sex": "female", "age_band": "35-50"},
        "label": label,
        "confidence": confidence,
        "scores": {label: confidence, ("deny" if label == "approve" else "approve"): round(1 - confidence, 6)},
        **extra,
    }


def stored_counts() -> tuple[int, int, int, int]:
    return (
        Prediction.objects.count(),
        Decision.objects.count(),
        ReviewTask.objects.count(),
        DecisionEvent.objects.filter(event_type__in=["prediction.routed", "decision.made"]).count(),
    )


def test_a_confident_prediction_is_decided_automatically_with_history_and_ledger(api, credit_model, ml_engineer):
    response = api.post(url(credit_model), item(confidence=0.93), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    prediction = Prediction.objects.get()
    assert body == {
        "external_id": "application-1",
        "id": prediction.pk,
        "route": "auto",
        "reasons": ["confidence 0.93 meets the 0.80 auto-decide threshold"],
        "decision": {"label": "approve", "source": "auto"},
        "review_task": None,
        "replayed": False,
    }
    assert prediction.sensitive_attributes == {"sex": "female", "age_band": "35-50"}
    assert prediction.submitted_by == ml_engineer and prediction.version.number == 1
    history = prediction.history.get()
    assert history.history_user == ml_engineer
    assert "routed" in history.history_change_reason
    decision = Decision.objects.get()
    assert (decision.final_label, decision.source, decision.prediction) == ("approve", DecisionSource.AUTO, prediction)
    assert decision.history.get().history_user == ml_engineer
    events = list(DecisionEvent.objects.filter(event_type__in=["prediction.routed", "decision.made"]))
    assert [event.event_type for event in events] == ["prediction.routed", "decision.made"]
    assert events[0].object_id == str(prediction.pk) and events[0].actor_label == ml_engineer.username
    assert prediction.input_sha256 in events[0].payload
    assert not any("credit_amount" in event.payload or "female" in event.payload for event in events)
    assert ledger_verify().intact


def test_an_uncertain_prediction_gets_a_review_task_due_within_the_sla(api, credit_model):
    before = timezone.now()
    response = api.post(url(credit_model), item(confidence=0.62), format="json")

    assert response.status_code == 201
    body = response.json()
    task = ReviewTask.objects.get()
    assert body["route"] == "review"
    assert body["reasons"] == ["confidence 0.62 is below the 0.80 auto-decide threshold"]
    assert body["decision"] is None and body["review_task"] == task.pk
    assert task.status == TaskStatus.OPEN and task.reviews_required == 2 and not task.needs_adjudication
    assert before + timedelta(hours=24) <= task.due_at <= timezone.now() + timedelta(hours=24)
    assert task.priority == task.prediction.priority > 0
    assert task.history.count() == 1
    assert not Decision.objects.exists()
    assert DecisionEvent.objects.filter(event_type="prediction.routed", object_id=str(task.prediction_id)).exists()


def test_a_batch_answers_one_result_per_item_in_the_order_sent(api, credit_model):
    items = [item(f"application-{n}", confidence=0.5 if n % 2 else 0.95) for n in (5, 3, 9, 1, 2)]

    response = api.post(url(credit_model), {"predictions": items}, format="json")

    assert response.status_code == 201
    results = response.json()["results"]
    assert [result["external_id"] for result in results] == [i["external_id"] for i in items]
    assert [result["route"] for result in results] == ["review", "review", "review", "review", "auto"]
    stored = {p.external_id: p.pk for p in Prediction.objects.all()}
    assert [result["id"] for result in results] == [stored[i["external_id"]] for i in items]
    assert stored_counts() == (5, 1, 4, 6)
    assert ledger_verify().intact


def test_a_replay_with_the_same_payload_returns_the_stored_result_and_creates_nothing(api, credit_model):
    first = api.post(url(credit_model), {"predictions": [item("a"), item("b", confidence=0.4)]}, format="json")
    counts = stored_counts()

    again = api.post(url(credit_model), {"predictions": [item("b", confidence=0.4), item("a")]}, format="json")

    assert again.status_code == 200
    by_id = {result["external_id"]: result for result in first.json()["results"]}
    assert again.json()["results"] == [{**by_id["b"], "replayed": True}, {**by_id["a"], "replayed": True}]
    assert stored_counts() == counts


def test_a_batch_mixing_replays_and_new_items_stores_only_the_new_ones(api, credit_model):
    api.post(url(credit_model), item("a"), format="json")

    response = api.post(url(credit_model), {"predictions": [item("a"), item("b")]}, format="json")

    assert response.status_code == 201
    assert [result["replayed"] for result in response.json()["results"]] == [True, False]
    assert Prediction.objects.count() == 2


def test_the_same_external_id_with_another_payload_is_a_409_and_the_batch_stores_nothing(api, credit_model):
    api.post(url(credit_model), item("a", confidence=0.93), format="json")
    counts = stored_counts()

    response = api.post(
        url(credit_model), {"predictions": [item("new-1"), item("a", confidence=0.95), item("new-2")]}, format="json"
    )

    assert response.status_code == 409
    body = response.json()
    assert body["conflicts"] == [
        {
            "index": 1,
            "field": "external_id",
            "message": f"'a' is already stored (prediction {Prediction.objects.get().pk}) with a different payload.",
        }
    ]
    assert "nothing was stored" in body["detail"]
    assert stored_counts() == counts


def test_a_single_conflicting_item_is_a_409(api, credit_model):
    api.post(url(credit_model), item("a", label="approve"), format="json")

    response = api.post(url(credit_model), item("a", label="deny"), format="json")

    assert response.status_code == 409
    assert Prediction.objects.get().predicted_label == "approve"


def test_a_batch_with_invalid_items_stores_nothing_and_lists_every_error(api, credit_model):
    items = [item("ok-1"), item("bad-1", confidence=1.5), item("ok-2"), item("bad-2", label="maybe")]
    del items[1]["scores"], items[3]["scores"]
    items[3]["features"]["age"] = 12

    response = api.post(url(credit_model), {"predictions": items}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "2 of 4 predictions are invalid; nothing was stored."
    assert {(error["index"], error["field"]) for error in body["errors"]} == {
        (1, "confidence"),
        (3, "label"),
        (3, "features.age"),
    }
    assert stored_counts() == (0, 0, 0, 0)


def test_items_without_a_version_use_the_production_version(api, credit_model):
    ModelVersionFactory(model=credit_model, number=2, stage=Stage.CANDIDATE)

    api.post(url(credit_model), item(), format="json")

    assert Prediction.objects.get().version.number == 1


def test_a_named_candidate_version_is_stored_but_never_decided_automatically(api, credit_model):
    ModelVersionFactory(model=credit_model, number=2, stage=Stage.CANDIDATE)

    response = api.post(url(credit_model), item(confidence=0.99, version=2), format="json")

    assert response.status_code == 201
    assert response.json()["route"] == "review"
    assert response.json()["reasons"][0].startswith("version 2 is candidate, not in production")
    assert Prediction.objects.get().version.number == 2


def test_a_model_without_a_production_version_needs_a_version_number(api, ml_engineer):
    model = MLModelFactory(name="fresh-model", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.STAGING)

    response = api.post(url(model), item(), format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "version",
            "message": "fresh-model has no production version: name the version that made this prediction.",
        }
    ]
    assert api.post(url(model), item(version=1), format="json").status_code == 201


@pytest.mark.parametrize(
    ("version", "stage", "message"),
    [(7, None, "credit-scoring has no version 7."), (2, Stage.REJECTED, "Version 2 was rejected")],
)
def test_an_unknown_or_rejected_version_is_refused(api, credit_model, version, stage, message):
    if stage:
        ModelVersionFactory(model=credit_model, number=version, stage=stage)

    response = api.post(url(credit_model), item(version=version), format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith(message)


def test_the_stop_switch_sends_every_new_case_to_review_naming_who_and_since_when(
    api, credit_model, compliance_officer
):
    from reviews.services.policies import routing_policy_set_stop_switch

    policy = routing_policy_get_or_create_default(model=credit_model)
    routing_policy_set_stop_switch(policy=policy, on=True, actor=compliance_officer, reason="Drift alert")

    response = api.post(url(credit_model), item(confidence=0.99), format="json")

    today = timezone.now().date().isoformat()
    assert response.json()["route"] == "review"
    assert response.json()["reasons"] == [f"stop switch on since {today} by {compliance_officer.username}"]


def test_business_rules_and_escalation_reach_the_review_task(api, credit_model, compliance_officer):
    routing_policy_update(
        policy=routing_policy_get_or_create_default(model=credit_model),
        changes={
            "rules": [
                {
                    "field": "credit_amount",
                    "operator": ">",
                    "value": 50000,
                    "action": "escalate",
                    "reason": "very large loans need a senior look",
                }
            ]
        },
        actor=compliance_officer,
        reason="Credit committee decision 2026-11",
    )
    big = item("big", confidence=0.99)
    big["features"]["credit_amount"] = 60000

    response = api.post(url(credit_model), big, format="json")

    task = ReviewTask.objects.get()
    reason = "credit_amount 60,000 > 50,000 (escalation rule: very large loans need a senior look)"
    assert response.json()["reasons"] == [reason]
    assert task.needs_adjudication and task.escalation_reason == reason


def test_a_critical_model_needs_three_reviews_and_an_adjudicator(api, ml_engineer):
    model = MLModelFactory(name="critical-model", owner=ml_engineer, risk_tier=RiskTier.CRITICAL)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)

    api.post(url(model), item(confidence=0.1), format="json")

    task = ReviewTask.objects.get()
    assert (task.reviews_required, task.needs_adjudication) == (3, True)


def test_qa_samples_are_routed_the_same_way_on_every_replay_and_run(api, credit_model, compliance_officer):
    routing_policy_update(
        policy=routing_policy_get_or_create_default(model=credit_model),
        changes={"qa_sample_rate": 0.5},
        actor=compliance_officer,
        reason="Pilot: sample half",
    )
    items = [item(f"application-{n}", confidence=0.99) for n in range(40)]

    results = api.post(url(credit_model), {"predictions": items}, format="json").json()["results"]

    sampled = {r["external_id"] for r in results if r["route"] == "review"}
    assert 0 < len(sampled) < 40
    assert set(Prediction.objects.filter(is_qa_sample=True).values_list("external_id", flat=True)) == sampled
    assert all(r["reasons"][-1] == "QA sample (50%)" for r in results if r["external_id"] in sampled)


def test_auto_decisions_of_a_batch_fill_the_webhook_outbox(api, credit_model, ml_engineer, other_ml_engineer):
    mine = Webhook.objects.create(owner=ml_engineer, url="https://example.org/h", events=["decision.final"], secret="s")
    Webhook.objects.create(owner=other_ml_engineer, url="https://example.org/x", events=["decision.final"], secret="s")

    api.post(url(credit_model), {"predictions": [item("a"), item("b"), item("c", confidence=0.2)]}, format="json")

    deliveries = list(WebhookDelivery.objects.all())
    assert len(deliveries) == 2 and {d.webhook for d in deliveries} == {mine}
    assert {d.payload["decision"]["external_id"] for d in deliveries} == {"a", "b"}


def test_sensitive_attributes_are_stored_apart_and_kept_out_of_history(api, credit_model):
    api.post(url(credit_model), item(), format="json")

    prediction = Prediction.objects.get()
    history = prediction.history.get()
    assert prediction.sensitive_attributes["sex"] == "female"
    assert not hasattr(history, "sensitive_attributes") and not hasattr(history, "features")


def _queries_for(api, model, n: int, prefix: str) -> int:
    # Every other item is confident: a batch of more than one writes both decisions and review tasks.
    items = [item(f"{prefix}-{i}", confidence=0.95 if i % 2 == 0 else 0.5) for i in range(n)]
    with CaptureQueriesContext(connection) as queries:
        response = api.post(url(model), {"predictions": items}, format="json")
    assert response.status_code == 201
    return len(queries)


def test_a_100_item_batch_takes_no_more_queries_than_a_1_item_batch_plus_a_small_constant(api, credit_model):
    _queries_for(api, credit_model, 2, "warm-up")  # creates the default routing policy
    one = _queries_for(api, credit_model, 1, "one")
    hundred = _queries_for(api, credit_model, 100, "hundred")

    # The constant: the review tasks and their history rows a 1-item auto batch does not write, and on SQLite
    # the INSERTs Django splits because SQLite caps the parameters of one statement.
    assert hundred <= one + (2 if connection.vendor == "postgresql" else 8), (one, hundred)


def test_only_the_models_owner_submits_predictions(api_client_for, credit_model, other_ml_engineer, compliance_officer):
    assert api_client_for(other_ml_engineer).post(url(credit_model), item(), format="json").status_code == 404
    assert api_client_for(compliance_officer).post(url(credit_model), item(), format="json").status_code == 403
    assert not Prediction.objects.exists()


def test_an_anonymous_caller_is_refused(anonymous_api_client, credit_model):
    assert anonymous_api_client.post(url(credit_model), item(), format="json").status_code == 401


def test_the_stored_auto_decision_matches_the_route(api, credit_model):
    api.post(url(credit_model), {"predictions": [item("a"), item("b", confidence=0.1)]}, format="json")

    assert set(Prediction.objects.filter(route=Route.AUTO).values_list("external_id", flat=True)) == {"a"}
    assert set(Decision.objects.values_list("prediction__external_id", flat=True)) == {"a"}


@pytest.mark.postgres
def test_two_overlapping_batches_sent_at_once_store_each_prediction_exactly_once(transactional_db, ml_engineer):
    from django.db import connections

    from reviews.services.intake import predictions_ingest

    model = MLModelFactory(name="credit-concurrent", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    batches = [
        [item(f"application-{n}", confidence=0.5 + (n % 5) / 10) for n in range(0, 300)],
        [item(f"application-{n}", confidence=0.5 + (n % 5) / 10) for n in reversed(range(150, 450))],
    ]
    barrier = threading.Barrier(2)
    outcomes, failures = [], []

    def send(batch):
        try:
            barrier.wait()
            outcomes.append(predictions_ingest(model=model, items=batch, actor=ml_engineer))
        except Exception as exc:  # the assertion below shows what went wrong
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sum(outcome.created for outcome in outcomes) == 450
    assert sum(outcome.replayed for outcome in outcomes) == 150
    assert Prediction.objects.filter(model=model).count() == 450
    assert DecisionEvent.objects.filter(event_type="prediction.routed").count() == 450
    assert ledger_verify().intact
