"""Celery tasks of the reviews app: thin wrappers that take ids, call one service, and handle retries.

Every task has a stable ``name``, so moving or renaming a function never orphans a queued message or a beat
entry. Services import their task at the top of their module; the tasks import the services inside their bodies.
"""

from celery import shared_task

# --- webhooks (intake and routing) ---


@shared_task(name="reviews.send_webhook_deliveries", ignore_result=True)
def send_webhook_deliveries(delivery_ids: list[int]) -> int:
    """Send these outbox rows now (enqueued when a decision commits); failures wait for their retry time."""
    from reviews.services.webhooks import webhook_deliveries_send

    return webhook_deliveries_send(delivery_ids=delivery_ids, limit=len(delivery_ids)).delivered


@shared_task(name="reviews.send_due_webhook_deliveries", ignore_result=True)
def send_due_webhook_deliveries() -> int:
    """Periodic (every minute): send every due delivery, retries and rows whose first send never ran."""
    from reviews.services.webhooks import SEND_BATCH_SIZE, webhook_deliveries_send

    delivered = 0
    while True:
        batch = webhook_deliveries_send(limit=SEND_BATCH_SIZE)
        delivered += batch.delivered
        if batch.claimed < SEND_BATCH_SIZE:
            return delivered


# --- review queue (assignments and leases) ---


@shared_task(name="reviews.sweep_review_queue", ignore_result=True)
def sweep_review_queue() -> dict[str, int]:
    """Periodic (every minute): release expired leases, flag SLA breaches, push slots under least-loaded push."""
    from reviews.services.assignments import (
        assignments_expire_leases,
        review_tasks_flag_sla_breaches,
        review_tasks_push_assign,
    )

    return {
        "leases_expired": len(assignments_expire_leases()),
        "sla_breached": len(review_tasks_flag_sla_breaches()),
        "assignments_pushed": len(review_tasks_push_assign()),
    }
