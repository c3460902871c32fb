"""Webhook deliveries against a real HTTP receiver on 127.0.0.1: signatures, back-off, recovery, giving up."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from reviews.choices import DecisionSource, DeliveryStatus
from reviews.models import WebhookDelivery
from reviews.services import webhooks
from reviews.services.decisions import decision_record
from reviews.services.webhooks import backoff_delay, webhook_create, webhook_deactivate, webhook_deliveries_send
from reviews.tasks import send_due_webhook_deliveries, send_webhook_deliveries
from tests.reviews.factories import PredictionFactory


class Receiver:
    """A local HTTP endpoint that answers with the given status codes in turn (the last one repeats)."""

    def __init__(self, statuses: list[int], *, redirect_to: str = ""):
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                # HTTP header names are case-insensitive, and so is this mapping.
                receiver.requests.append({"headers": self.headers, "body": body, "path": self.path})
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                if redirect_to:
                    self.send_header("Location", redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/decisions"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prediction(ml_engineer):
    return PredictionFactory(version__model__owner=ml_engineer)


def decide(prediction, adjudicator):
    return decision_record(
        prediction=prediction,
        final_label="deny",
        source=DecisionSource.ADJUDICATION,
        agreement=0.5,
        decided_by=adjudicator,
        reason="Income not verified",
    )


def make_due(delivery: WebhookDelivery) -> None:
    """Time passes: the delivery's retry time has come."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_delivery_is_posted_signed_with_the_webhook_secret(prediction, ml_engineer, adjudicator):
    with Receiver([204]) as receiver:
        _, secret = webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decision = decide(prediction, adjudicator)

        summary = webhook_deliveries_send()

    assert (summary.claimed, summary.delivered) == (1, 1)
    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    expected = hmac.new(secret.encode(), f"{headers['X-HITL-Timestamp']}.".encode() + body, hashlib.sha256)
    assert headers["X-HITL-Signature"] == f"sha256={expected.hexdigest()}"
    assert headers["Content-Type"] == "application/json" and headers["X-HITL-Event"] == "decision.final"
    delivery = WebhookDelivery.objects.get()
    assert headers["X-HITL-Delivery"] == str(delivery.delivery_id)
    payload = json.loads(body)
    assert payload["delivery_id"] == str(delivery.delivery_id)
    assert payload["decision"] == {**payload["decision"], "id": decision.pk, "label": "deny", "source": "adjudication"}
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.DELIVERED, 1, 204)
    assert delivery.delivered_at is not None


def test_a_receiver_that_fails_then_recovers_gets_the_delivery_after_backing_off(prediction, ml_engineer, adjudicator):
    with Receiver([500, 503, 200]) as receiver:
        webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decide(prediction, adjudicator)
        delivery = WebhookDelivery.objects.get()

        before = timezone.now()
        assert webhook_deliveries_send().delivered == 0
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
        assert delivery.last_error == "HTTP 500 Internal Server Error"
        assert delivery.next_attempt_at >= before + backoff_delay(1)

        assert webhook_deliveries_send().claimed == 0  # not due yet: nothing is sent early
        make_due(delivery)
        assert webhook_deliveries_send().delivered == 0
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.last_status_code) == (2, 503)
        assert delivery.next_attempt_at >= timezone.now() + backoff_delay(2) - timedelta(seconds=5)

        make_due(delivery)
        assert webhook_deliveries_send().delivered == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.DELIVERED, 3, 200)
    assert len({r["headers"]["X-HITL-Delivery"] for r in receiver.requests}) == 1
    assert len({r["body"] for r in receiver.requests}) == 1


def test_a_receiver_that_is_down_loses_nothing_until_it_comes_back(prediction, ml_engineer, adjudicator):
    with Receiver([200]) as receiver:
        url = receiver.url
    webhook_create(owner=ml_engineer, url=url, events=["decision.final"])
    decide(prediction, adjudicator)

    webhook_deliveries_send()

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code is None
    assert "ConnectionRefusedError" in delivery.last_error or "Connection refused" in delivery.last_error


def test_it_gives_up_after_the_maximum_number_of_attempts(prediction, ml_engineer, adjudicator, monkeypatch):
    monkeypatch.setattr(webhooks, "MAX_ATTEMPTS", 3)
    with Receiver([500]) as receiver:
        webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decide(prediction, adjudicator)
        delivery = WebhookDelivery.objects.get()
        for _ in range(3):
            make_due(delivery)
            webhook_deliveries_send()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)
    assert len(receiver.requests) == 3


def test_the_back_off_doubles_and_is_capped():
    assert [backoff_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff_delay(20) == timedelta(hours=1)


def test_a_redirect_is_not_followed_and_counts_as_a_failure(prediction, ml_engineer, adjudicator):
    with Receiver([200]) as elsewhere, Receiver([307], redirect_to=elsewhere.url) as receiver:
        webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decide(prediction, adjudicator)
        webhook_deliveries_send()

    assert not elsewhere.requests
    assert WebhookDelivery.objects.get().last_status_code == 307


def test_a_deleted_webhooks_pending_deliveries_are_given_up_not_sent(prediction, ml_engineer, adjudicator):
    with Receiver([200]) as receiver:
        webhook, _ = webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decide(prediction, adjudicator)
        webhook_deactivate(webhook=webhook, actor=ml_engineer)
        webhook_deliveries_send()

    assert not receiver.requests
    assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED


def test_a_decision_enqueues_its_deliveries_when_the_transaction_commits(
    prediction, ml_engineer, adjudicator, django_capture_on_commit_callbacks
):
    with Receiver([200]) as receiver:
        webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            decide(prediction, adjudicator)

    assert len(callbacks) == 1
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


def test_the_tasks_send_given_ids_and_the_periodic_one_sends_whatever_is_due(prediction, ml_engineer, adjudicator):
    with Receiver([200]) as receiver:
        webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decide(prediction, adjudicator)
        decide(PredictionFactory(version=prediction.version, model=prediction.model), adjudicator)
        first, second = WebhookDelivery.objects.order_by("id")

        assert send_webhook_deliveries.delay([first.pk]).get() == 1
        second.refresh_from_db()
        assert second.status == DeliveryStatus.PENDING and second.attempts == 0
        assert send_due_webhook_deliveries.delay().get() == 1

    assert [r["headers"]["X-HITL-Delivery"] for r in receiver.requests] == [
        str(first.delivery_id),
        str(second.delivery_id),
    ]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}


@pytest.mark.postgres
def test_a_worker_skips_deliveries_another_worker_holds_instead_of_waiting(transactional_db, ml_engineer, adjudicator):
    prediction = PredictionFactory(version__model__owner=ml_engineer)
    webhook_create(owner=ml_engineer, url="http://127.0.0.1:9/", events=["decision.final"])
    for _ in range(40):
        decide(PredictionFactory(version=prediction.version, model=prediction.model), adjudicator)
    # Each decision's first send already ran (and failed) on commit; time passes until all are due again.
    WebhookDelivery.objects.update(attempts=0, next_attempt_at=timezone.now() - timedelta(seconds=1))
    other_claim: list[int] = []

    def other_worker():
        try:
            other_claim.extend(d.pk for d in webhooks._claim(now=timezone.now(), delivery_ids=None, limit=30))
        finally:
            connections.close_all()

    with transaction.atomic():
        # This worker's claim is not committed yet: its rows stay locked and look due to everyone else.
        held = {d.pk for d in webhooks._claim(now=timezone.now(), delivery_ids=None, limit=30)}
        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the second worker waited for the first one's locks"

    assert connection.vendor == "postgresql"
    assert len(held) == 30 and len(other_claim) == 10
    assert not held & set(other_claim)
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.postgres
@pytest.mark.celery_worker
def test_a_real_worker_sends_a_decisions_delivery_after_commit(celery_worker_process, ml_engineer, adjudicator):
    from tests.conftest import wait_until

    prediction = PredictionFactory(version__model__owner=ml_engineer)
    with Receiver([503, 200]) as receiver:
        webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decide(prediction, adjudicator)

        wait_until(lambda: WebhookDelivery.objects.filter(attempts=1).exists(), timeout=30)
        delivery = WebhookDelivery.objects.get()
        assert delivery.last_status_code == 503 and delivery.status == DeliveryStatus.PENDING
        make_due(delivery)
        send_due_webhook_deliveries.delay()
        wait_until(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists(), timeout=30)

    assert len(receiver.requests) == 2


def test_a_failing_receiver_costs_one_request_per_run_and_its_other_deliveries_wait_untried(
    prediction, ml_engineer, adjudicator
):
    with Receiver([500, 200]) as receiver:
        webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decide(prediction, adjudicator)
        decide(PredictionFactory(version=prediction.version, model=prediction.model), adjudicator)

        summary = webhook_deliveries_send()

        assert (summary.claimed, summary.delivered, len(receiver.requests)) == (2, 0, 1)
        first, second = WebhookDelivery.objects.order_by("id")
        assert (first.attempts, second.attempts) == (1, 0)
        assert second.next_attempt_at == first.next_attempt_at
        assert second.status == DeliveryStatus.PENDING and second.last_error.startswith("Not sent")

        WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        assert webhook_deliveries_send().delivered == 2

    assert len(receiver.requests) == 3


def test_a_receiver_that_moved_to_a_private_address_is_not_called(prediction, ml_engineer, adjudicator, settings):
    with Receiver([200]) as receiver:
        webhook_create(owner=ml_engineer, url=receiver.url, events=["decision.final"])
        decide(prediction, adjudicator)
        settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

        summary = webhook_deliveries_send()

    assert summary.delivered == 0
    assert not receiver.requests
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert "private or local address" in delivery.last_error
