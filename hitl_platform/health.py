"""``/healthz``: whether this process can reach the database and the task queue, for load balancers and monitors.

No login and no session: a load balancer asks every few seconds and must never create a session row. Each
dependency is reported in words, so a 503 says which one failed and why. A dead broker answers within a few
seconds (short socket timeouts, one quick retry) rather than after Celery's usual connection retries.
"""

import logging

from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from hitl_platform.celery import app as celery_app

logger = logging.getLogger(__name__)

OK = "ok"
BROKER_NOT_USED = "not used (tasks run in-process)"
BROKER_TIMEOUT_SECONDS = 2


def database_status() -> str:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    # A health check answers whatever goes wrong: any failure is the database's state, never a 500.
    except Exception as exc:
        return _unreachable("database", exc)
    return OK


def broker_status() -> str:
    if celery_app.conf.task_always_eager:
        return BROKER_NOT_USED
    try:
        # Redis reads its socket timeouts from the transport options, AMQP from connect_timeout.
        with celery_app.connection_for_read(
            connect_timeout=BROKER_TIMEOUT_SECONDS,
            transport_options={
                "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
                "socket_timeout": BROKER_TIMEOUT_SECONDS,
            },
        ) as broker:
            # One more try, a moment later, so that a connection dropped once does not take the process out.
            broker.ensure_connection(max_retries=1, interval_start=0.25, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        return _unreachable("broker", exc)
    return OK


def _unreachable(dependency: str, exc: BaseException) -> str:
    words = " ".join(str(exc).split()) or type(exc).__name__
    logger.warning("Health check: the %s is unreachable: %s", dependency, words)
    return f"unreachable: {words}"


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer; 503 naming the one that does not."""
    checks = {"database": database_status(), "broker": broker_status()}
    healthy = all(status in (OK, BROKER_NOT_USED) for status in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)
