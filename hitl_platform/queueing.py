"""Sending Celery tasks for jobs the platform records as rows (audits, exports, ledger checks).

The row is written first and the task sent once its transaction commits, so a worker never looks for a row that
is not there yet. When the broker cannot be reached (Redis or RabbitMQ down, a wrong ``CELERY_BROKER_URL``) the
request must not fail with a 500 nor leave a row "queued" that no worker will ever see: the job is marked as
not started, with a reason its requester can act on, and can be retried once the queue is back.
"""

import logging
from collections.abc import Callable

from celery import Task
from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

BROKER_UNREACHABLE = (
    "The task queue could not be reached, so this job was not started. Nothing else was lost: "
    "retry it once the queue (CELERY_BROKER_URL) is reachable again."
)


def task_send_on_commit(task: Task, *args, on_unreachable: Callable[[str], None]) -> None:
    """Send ``task(*args)`` after the current transaction commits (at once outside one).

    ``on_unreachable(reason)`` records on the job's row that it was not started when the broker refuses it.
    """

    def send() -> None:
        try:
            task.delay(*args)
        except OperationalError:
            logger.error("Could not send %s%r: the broker is unreachable", task.name, args, exc_info=True)
            on_unreachable(BROKER_UNREACHABLE)

    transaction.on_commit(send)
