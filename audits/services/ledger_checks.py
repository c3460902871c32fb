"""Full verifications of the ledger chain, recorded as a log (who asked, when, head hash or first broken link)."""

import logging

from django.db import transaction
from django.utils import timezone

from audits.choices import LedgerCheckStatus
from audits.ledger import ledger_verify
from audits.models import LedgerCheck

logger = logging.getLogger(__name__)


def ledger_check_request(*, actor) -> LedgerCheck:
    """Queue a full verification of the chain; ``actor`` None means the schedule asked."""
    from audits.tasks import ledger_check_task

    check = LedgerCheck.objects.create(requested_by=actor if getattr(actor, "is_authenticated", False) else None)
    transaction.on_commit(lambda: ledger_check_task.delay(check.pk))
    return check


def ledger_check_run(*, check: LedgerCheck) -> LedgerCheck:
    """Recompute the whole chain (streaming) and record the head hash or the first broken link."""
    check.status = LedgerCheckStatus.RUNNING
    check.started_at = timezone.now()
    check.save(update_fields=["status", "started_at"])
    result = ledger_verify()
    check.status = LedgerCheckStatus.INTACT if result.intact else LedgerCheckStatus.BROKEN
    check.checked = result.checked
    check.head_hash = result.head_hash
    check.last_event_id = result.last_event_id
    check.broken_event_id = result.broken_event_id
    check.expected_hash = result.expected_hash
    check.found_hash = result.found_hash
    check.problem = result.problem
    check.finished_at = timezone.now()
    check.save()
    if not result.intact:
        logger.error(
            "Ledger verification %s: chain broken at event %s (%s); expected %s, found %s",
            check.pk,
            result.broken_event_id,
            result.problem,
            result.expected_hash,
            result.found_hash,
        )
    return check
