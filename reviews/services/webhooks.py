"""Webhooks: downstream receivers of final decisions, and the sender that drains the outbox.

Outbox rows (``WebhookDelivery``) are written in the decision's own transaction (``reviews.services.decisions``)
and sent after commit by a Celery task; a periodic task sends whatever is due (retries, and anything enqueued
while the broker was away), so a receiver that is down loses nothing.

Sending, several workers at once:
1. Claim: in a short transaction, due pending rows are selected ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so two
   workers never claim the same row; each claimed row's attempt is counted and its ``next_attempt_at`` moved
   a lease ahead, so no other worker finds it due while it is being sent. No lock is held during HTTP.
2. Send: JSON POST, signed (below), 10 s timeout, redirects not followed. Any 2xx is delivered.
3. Record: delivered; or retried with exponential back-off (30 s, 1, 2, 4 ... min, at most 1 h apart); or,
   after ``MAX_ATTEMPTS``, failed. Once a receiver fails, its other deliveries of the run wait, untried, for
   the same retry time. A worker that dies mid-send leaves the row due again when the lease ends: delivery
   is at least once, and receivers de-duplicate by the delivery id.

Signature: ``X-HITL-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``, with
``X-HITL-Timestamp`` (Unix seconds; receivers should refuse old ones) and ``X-HITL-Delivery`` (the delivery's
UUID, the same on every retry). The secret is generated here, shown to the owner once, and never historised.
"""

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from hitl_platform.history import historise
from hitl_platform.queueing import task_send_on_commit
from models_registry.models import MLModel
from models_registry.selectors import user_may_write_model
from reviews.choices import DeliveryStatus
from reviews.models import Webhook, WebhookDelivery
from reviews.tasks import send_webhook_deliveries

DECISION_FINAL_EVENT = "decision.final"
AUDIT_FAILED_EVENT = "audit.failed"
WEBHOOK_EVENTS = (DECISION_FINAL_EVENT, AUDIT_FAILED_EVENT)
MAX_ATTEMPTS = 12
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
SEND_LEASE = timedelta(minutes=2)
SEND_TIMEOUT_SECONDS = 10
SEND_BATCH_SIZE = 100
USER_AGENT = "hitl-platform-webhooks/1"

_url_validator = URLValidator(schemes=["http", "https"])


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-HITL-Signature`` value a receiver recomputes to trust a delivery."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def backoff_delay(attempts: int) -> timedelta:
    """How long to wait after the given number of failed attempts: doubling from 30 s, capped at an hour."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_CAP)


def webhook_url_problem(url: str) -> str:
    """Why the platform may not POST to this URL, or "" if it may.

    The sender runs inside the deployment's network: a receiver that resolves to a loopback, private,
    link-local or otherwise non-public address could make it call internal services (server-side request
    forgery). Unless ``WEBHOOK_ALLOW_PRIVATE_NETWORKS`` is on, only public addresses are called; the check
    runs at registration and again before every send, as DNS answers change.
    """
    if settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS:
        return ""
    host = urlsplit(url).hostname or ""
    try:
        # An IPv4 or IPv6 answer's address is a string (typeshed's union also covers other families).
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        return f"The host {host} cannot be resolved."
    for address in sorted(addresses):
        if not ipaddress.ip_address(address.split("%", 1)[0]).is_global:
            return (
                f"The host {host} resolves to {address}, a private or local address: webhooks are sent only to "
                "public receivers."
            )
    return ""


def _clean(*, owner, url: Any, events: Any, model: MLModel | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    try:
        _url_validator(url)
    except ValidationError:
        errors["url"] = ["Enter an http or https URL."]
    else:
        problem = webhook_url_problem(url)
        if problem:
            errors["url"] = [problem]
    if not isinstance(events, list) or not events or any(event not in WEBHOOK_EVENTS for event in events):
        errors["events"] = [f"Choose one or more of: {', '.join(WEBHOOK_EVENTS)}."]
    if model is not None and not user_may_write_model(owner, model):
        errors["model"] = ["You may only subscribe to models you or your team work on."]
    return errors


@transaction.atomic
def webhook_create(*, owner: User, url: str, events: list[str], model: MLModel | None = None) -> tuple[Webhook, str]:
    """Register a receiver; return it and its secret, which is never shown again."""
    errors = _clean(owner=owner, url=url, events=events, model=model)
    if errors:
        raise ValidationError(errors)
    secret = secrets.token_hex(32)
    webhook = Webhook(owner=owner, url=url, events=sorted(set(events)), model=model, secret=secret)
    historise(webhook, actor=owner, reason="Webhook registered by its owner.")
    webhook.save()
    return webhook, secret


@transaction.atomic
def webhook_update(*, webhook: Webhook, changes: dict[str, Any], actor: User) -> Webhook:
    """Change a receiver's url, events, model or active flag."""
    url = changes.get("url", webhook.url)
    events = changes.get("events", webhook.events)
    model = changes.get("model", webhook.model)
    errors = _clean(owner=webhook.owner, url=url, events=events, model=model)
    is_active = changes.get("is_active", webhook.is_active)
    if not isinstance(is_active, bool):
        errors["is_active"] = ["Enter true or false."]
    if errors:
        raise ValidationError(errors)
    webhook.url, webhook.events, webhook.model, webhook.is_active = url, sorted(set(events)), model, is_active
    historise(webhook, actor=actor, reason="Webhook changed by its owner.")
    webhook.save(update_fields=["url", "events", "model", "is_active"])
    return webhook


@transaction.atomic
def webhook_deactivate(*, webhook: Webhook, actor: User) -> Webhook:
    """Stop a receiver for good. Its row stays, because its deliveries (the record of what was sent) do."""
    webhook.is_active = False
    historise(webhook, actor=actor, reason="Webhook deleted by its owner.")
    webhook.save(update_fields=["is_active"])
    return webhook


def _models_worked_on(webhooks: Sequence[Webhook], model_ids: set[int]) -> set[tuple[int, int]]:
    """(user id, model id) for the owners of model-less webhooks and the models they own or their team owns."""
    owners = {webhook.owner_id for webhook in webhooks if webhook.model_id is None and not webhook.owner.is_superuser}
    if not owners:
        return set()
    models = list(MLModel.objects.filter(id__in=model_ids).values_list("id", "owner_id", "team_id"))
    teams = {team_id for _, _, team_id in models if team_id is not None}
    memberships = set(
        get_user_model()
        .groups.through.objects.filter(user_id__in=owners, group_id__in=teams)
        .values_list("user_id", "group_id")
    )
    return {
        (owner_id, model_id)
        for model_id, model_owner_id, team_id in models
        for owner_id in owners
        if owner_id == model_owner_id or (owner_id, team_id) in memberships
    }


def webhook_subscribers(*, event: str, model_ids: set[int]) -> dict[int, list[Webhook]]:
    """The active webhooks subscribed to ``event`` for each of these models, in two or three queries.

    A webhook naming a model receives that model's events. One without a model receives the events of every model
    its owner works on: the models they own or their team owns (every model, for a superuser), never another
    team's.
    """
    webhooks = [
        webhook
        for webhook in Webhook.objects.filter(is_active=True)
        .filter(Q(model_id__in=model_ids) | Q(model__isnull=True))
        .select_related("owner")
        .order_by("id")
        if event in webhook.events
    ]
    works_on = _models_worked_on(webhooks, model_ids)
    return {
        model_id: [
            webhook
            for webhook in webhooks
            if webhook.model_id == model_id
            or (webhook.model_id is None and (webhook.owner.is_superuser or (webhook.owner_id, model_id) in works_on))
        ]
        for model_id in model_ids
    }


def webhook_event_fan_out(*, event: str, model_id: int, payload: dict[str, Any]) -> list[WebhookDelivery]:
    """Outbox rows of one model event (e.g. ``audit.failed``) for its subscribers, sent when the caller commits."""
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook=webhook, event=event, payload={"event": event, **payload})
        for webhook in webhook_subscribers(event=event, model_ids={model_id})[model_id]
    )
    webhook_deliveries_enqueue([delivery.pk for delivery in deliveries])
    return deliveries


def webhook_deliveries_enqueue(delivery_ids: Sequence[int]) -> None:
    """Send these outbox rows after the current transaction commits (never for a rolled-back decision).

    When the broker is unreachable the rows stay pending: the periodic sweep of due deliveries sends them later,
    and the decision that committed is never reported as failed.
    """
    if not delivery_ids:
        return
    task_send_on_commit(send_webhook_deliveries, list(delivery_ids), on_unreachable=lambda reason: None)


def _claim(*, now: datetime, delivery_ids: Sequence[int] | None, limit: int) -> list[WebhookDelivery]:
    with transaction.atomic():
        due = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        if delivery_ids is not None:
            due = due.filter(id__in=delivery_ids)
        claimed = list(
            due.select_related("webhook")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at", "id")[:limit]
        )
        if claimed:
            WebhookDelivery.objects.filter(id__in=[delivery.pk for delivery in claimed]).update(
                attempts=F("attempts") + 1, next_attempt_at=now + SEND_LEASE
            )
    for delivery in claimed:
        delivery.attempts += 1
    return claimed


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None
    error: str

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would re-send a signed body to a URL its owner never registered.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(delivery: WebhookDelivery) -> SendResult:
    body = json.dumps(
        {**delivery.payload, "delivery_id": str(delivery.delivery_id)}, separators=(",", ":"), sort_keys=True
    ).encode()
    timestamp = int(time.time())
    request = urllib.request.Request(
        delivery.webhook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-HITL-Event": delivery.event,
            "X-HITL-Delivery": str(delivery.delivery_id),
            "X-HITL-Timestamp": str(timestamp),
            "X-HITL-Signature": webhook_signature(secret=delivery.webhook.secret, timestamp=timestamp, body=body),
        },
    )
    try:
        with _opener.open(request, timeout=SEND_TIMEOUT_SECONDS) as response:
            return SendResult(status_code=response.status, error="")
    except urllib.error.HTTPError as exc:
        return SendResult(status_code=exc.code, error=f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return SendResult(status_code=None, error=f"{type(exc).__name__}: {reason}"[:1000])


def _record(delivery: WebhookDelivery, result: SendResult, *, now: datetime, give_up: bool = False) -> None:
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    if result.delivered:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
    elif give_up or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
    else:
        delivery.next_attempt_at = now + backoff_delay(delivery.attempts)
    delivery.save(update_fields=["status", "last_status_code", "last_error", "delivered_at", "next_attempt_at"])


@dataclass(frozen=True, slots=True)
class SendSummary:
    claimed: int
    delivered: int


def _postpone(delivery: WebhookDelivery, *, until: datetime) -> None:
    # Not tried, so the claim's attempt is given back.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=F("attempts") - 1,
        next_attempt_at=until,
        last_error="Not sent: the receiver failed on another delivery just before; retried with it.",
    )


def webhook_deliveries_send(*, delivery_ids: Sequence[int] | None = None, limit: int = SEND_BATCH_SIZE) -> SendSummary:
    """Claim up to ``limit`` due deliveries (of these ids only, if given), send them, record each result.

    Once a receiver fails, its other deliveries of this run are postponed untried to its retry time, so a
    receiver that is down (or hangs until the timeout) costs one request per run, not one per delivery.
    """
    claimed = _claim(now=timezone.now(), delivery_ids=delivery_ids, limit=limit)
    delivered = 0
    retry_at: dict[int, datetime] = {}
    # One address check per receiver and run, not one DNS lookup per delivery.
    url_problems: dict[str, str] = {}
    for delivery in claimed:
        if not delivery.webhook.is_active:
            result = SendResult(status_code=None, error="The webhook was deleted before this delivery was sent.")
            _record(delivery, result, now=timezone.now(), give_up=True)
            continue
        if delivery.webhook_id in retry_at:
            _postpone(delivery, until=retry_at[delivery.webhook_id])
            continue
        url = delivery.webhook.url
        if url not in url_problems:
            url_problems[url] = webhook_url_problem(url)
        problem = url_problems[url]
        result = SendResult(status_code=None, error=f"Not sent: {problem}") if problem else _post(delivery)
        _record(delivery, result, now=timezone.now())
        if result.delivered:
            delivered += 1
        else:
            retry_at[delivery.webhook_id] = delivery.next_attempt_at
    return SendSummary(claimed=len(claimed), delivered=delivered)
