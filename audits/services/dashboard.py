"""Rebuilding the dashboard's daily rollup from the records (a cache: no history, no ledger)."""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from audits.dashboard_math import AgreementStats, histogram_of
from audits.models import DashboardDay
from audits.selectors.dashboard import (
    DAY_COUNTS,
    arrivals_by_model_and_day,
    dashboard_last_refresh,
    human_decision_times,
    review_labels_by_case,
    sla_breaches_by_model_and_day,
)
from audits.tasks import dashboard_refresh_task

logger = logging.getLogger(__name__)

DASHBOARD_REFRESH_LOCK_KEY = 0x48_49_54_4C_44_41_53_48
# Past this age the whole window is rebuilt (the beat schedule is not running: a laptop, a stopped beat) ...
DASHBOARD_STALE_AFTER = timedelta(minutes=10)
# ... and past this one today's figures, so a case that just arrived shows within a minute.
DASHBOARD_TODAY_STALE_AFTER = timedelta(minutes=1)


def dashboard_refresh(*, first_day: date, last_day: date, now: datetime | None = None) -> int:
    """Rebuild the dashboard's daily figures of every model for cases that arrived between the two days.

    Four aggregate reads over those days, then the days' rows are replaced in one transaction (serialised on
    PostgreSQL, so overlapping refreshes never collide). Returns how many (model, day) rows were written.
    """
    now = now or timezone.now()
    zone = timezone.get_current_timezone()
    start = datetime.combine(first_day, time.min, tzinfo=zone)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=zone)
    rows: dict[tuple[int, date], DashboardDay] = {}

    def row(model_id: int, day: date) -> DashboardDay:
        key = (model_id, day)
        if key not in rows:
            rows[key] = DashboardDay(model_id=model_id, day=day, refreshed_at=now)
        return rows[key]

    for counts in arrivals_by_model_and_day(start=start, end=end):
        day_row = row(counts["model_id"], counts["day"])
        for name in DAY_COUNTS:
            if name in counts:
                setattr(day_row, name, counts[name])
    minutes: dict[tuple[int, date], list[float]] = defaultdict(list)
    for model_id, arrived_at, decided_at in human_decision_times(start=start, end=end):
        minutes[(model_id, timezone.localdate(arrived_at, zone))].append((decided_at - arrived_at).total_seconds() / 60)
    for (model_id, day), values in minutes.items():
        row(model_id, day).decision_minutes = histogram_of(values)
    agreement: dict[tuple[int, date], AgreementStats] = defaultdict(AgreementStats)
    for (model_id, _, arrived_at), labels in _labels_per_case(review_labels_by_case(start=start, end=end)):
        agreement[(model_id, timezone.localdate(arrived_at, zone))].add_case(labels)
    for (model_id, day), stats in agreement.items():
        day_row = row(model_id, day)
        day_row.agreement_cases = stats.cases
        day_row.agreement_disagreement = stats.disagreement
        day_row.agreement_labels = dict(stats.labels)
    for breaches in sla_breaches_by_model_and_day(start=start, end=end, now=now):
        row(breaches["model_id"], breaches["day"]).sla_breaches = breaches["breaches"]

    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [DASHBOARD_REFRESH_LOCK_KEY])
        DashboardDay.objects.filter(day__gte=first_day, day__lte=last_day).delete()
        DashboardDay.objects.bulk_create(rows.values(), batch_size=1000)
    return len(rows)


def _labels_per_case(rows) -> Iterator[tuple[tuple[int, int, datetime], Counter]]:
    """Group (model, task, arrival, label, n) rows, ordered by task, into one label count per case."""
    current_key = None
    labels: Counter = Counter()
    for model_id, task_id, arrived_at, label, count in rows:
        key = (model_id, task_id, arrived_at)
        if key != current_key and current_key is not None:
            yield current_key, labels
            labels = Counter()
        current_key = key
        labels[label] += count
    if current_key is not None:
        yield current_key, labels


def dashboard_refresh_recent(*, days: int, now: datetime | None = None) -> int:
    """Rebuild the last ``days`` days of the dashboard (today included)."""
    today = timezone.localdate(now)
    return dashboard_refresh(first_day=today - timedelta(days=days - 1), last_day=today, now=now)


def dashboard_refresh_when_stale(*, window_days: int, now: datetime | None = None) -> None:
    """Ask for a rebuild of the rollup a page is about to read if it is stale: the last ``window_days`` days
    when it is older than DASHBOARD_STALE_AFTER (or was never built), today's when older than a minute.

    Eager Celery rebuilds it here, before the page reads it; a real worker in the background, for the next
    load. Pages loaded while that rebuild is on its way ask once per rollup and minute, not once per load.
    """
    now = now or timezone.now()
    last_refresh = dashboard_last_refresh()
    age = None if last_refresh is None else now - last_refresh
    if age is not None and age <= DASHBOARD_TODAY_STALE_AFTER:
        return
    days = window_days if age is None or age > DASHBOARD_STALE_AFTER else 1
    asked = f"hitl:dashboard-refresh-asked:{last_refresh.isoformat() if last_refresh else 'never'}:{days}"
    if not cache.add(asked, True, timeout=int(DASHBOARD_TODAY_STALE_AFTER.total_seconds())):
        return
    try:
        dashboard_refresh_task.delay(days=days)
    except OperationalError:
        cache.delete(asked)
        logger.warning("Dashboard figures are stale and the broker is unreachable to rebuild them", exc_info=True)
