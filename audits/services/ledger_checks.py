"""Verifications of the ledger, recorded as a log, and the anchors kept outside the database.

A full verification (console, schedule or ``manage.py verify_ledger``) recomputes every link and seal, and
compares the chain with every head recorded before it: the signed heads of earlier intact verifications and
the newest anchor in the sink (every anchor, when asked). A head that is gone or changed makes the run BROKEN at
that event, so a chain cut short or rewritten is never recorded as a new intact head. The run then reconciles
the governed rows against their latest ledger events and keeps the mismatches.

The anchor task verifies only what is new since the newest anchor (after checking that anchor still holds)
and appends a signed anchor when the head moved.
"""

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.utils import timezone

from audits.anchors import Anchor, AnchorFormatError, anchor_make, anchor_sink
from audits.choices import LedgerCheckOrigin, LedgerCheckStatus
from audits.ledger import (
    LedgerHead,
    LedgerVerification,
    ledger_head_signature,
    ledger_verify,
    ledger_verify_since,
)
from audits.models import LedgerCheck
from audits.services.reconciliation import Mismatch, governed_rows_reconcile
from audits.tasks import ledger_check_task
from hitl_platform.queueing import task_send_on_commit

logger = logging.getLogger(__name__)

MISMATCHES_KEPT = 200


def ledger_check_request(*, actor: User | None, origin: str = LedgerCheckOrigin.CONSOLE) -> LedgerCheck:
    """Queue a full verification of the chain; ``actor`` None means the schedule asked."""
    requested_by = actor if getattr(actor, "is_authenticated", False) else None
    check = LedgerCheck.objects.create(requested_by=requested_by, origin=origin)

    def not_started(reason: str) -> None:
        LedgerCheck.objects.filter(pk=check.pk, status=LedgerCheckStatus.QUEUED).update(
            status=LedgerCheckStatus.FAILED, problem=reason, finished_at=timezone.now()
        )
        check.refresh_from_db(fields=["status", "problem", "finished_at"])

    task_send_on_commit(ledger_check_task, check.pk, on_unreachable=not_started)
    return check


def _broken(head: LedgerHead, problem: str) -> LedgerVerification:
    return LedgerVerification(
        checked=0,
        head_hash="",
        broken_event_id=head.last_event_id,
        expected_hash=head.head_hash,
        problem=problem,
        failed_head=head,
    )


def _recorded_heads(*, excluding: int | None) -> tuple[list[LedgerHead], LedgerVerification | None]:
    """The signed heads of earlier intact verifications; a failure if one of them is not properly signed."""
    heads: list[LedgerHead] = []
    rows = LedgerCheck.objects.filter(status=LedgerCheckStatus.INTACT)
    if excluding is not None:
        rows = rows.exclude(pk=excluding)
    rows = rows.order_by("checked", "id")
    for pk, count, last_event_id, head_hash, signature, finished_at in rows.values_list(
        "pk", "checked", "last_event_id", "head_hash", "head_signature", "finished_at"
    ):
        when = f", {finished_at:%Y-%m-%d %H:%M:%S}" if finished_at else ""
        head = LedgerHead(
            event_count=count,
            last_event_id=last_event_id,
            head_hash=head_hash,
            label=f"verification {pk}{when}",
        )
        if not hmac.compare_digest(signature, ledger_head_signature(head)):
            return heads, _broken(
                head,
                f"the head recorded by verification {pk} is not signed with this deployment's ledger key: "
                "the record was inserted or edited in the database",
            )
        heads.append(head)
    return heads, None


def _anchor_heads(*, every_anchor: bool) -> tuple[list[LedgerHead], LedgerVerification | None]:
    """The newest anchor (or every one) as heads; a failure at the first line that is unsigned or out of order."""
    sink = anchor_sink()
    try:
        anchors: list[Anchor] = list(sink.anchors()) if every_anchor else [a for a in [sink.latest()] if a]
    except AnchorFormatError as exc:
        head = LedgerHead(event_count=0, last_event_id=None, head_hash="", label=sink.description)
        return [], _broken(head, f"{exc} ({sink.description}): the anchor file was edited or cut short")
    previous = None
    for anchor in anchors:
        if not anchor.signature_valid:
            return [], _broken(
                anchor.head,
                f"{anchor.name} in {sink.description} does not carry this deployment's signature "
                "(the anchor file was edited, or signed with another key)",
            )
        if previous is not None and anchor.event_count < previous.event_count:
            return [], _broken(
                anchor.head,
                f"{anchor.name} records {anchor.event_count} events, fewer than the {previous.event_count} of "
                f"{previous.name} before it: the chain was cut short, or the anchor file was edited",
            )
        previous = anchor
    return [anchor.head for anchor in anchors], None


def _record(check: LedgerCheck, result: LedgerVerification) -> None:
    check.status = LedgerCheckStatus.INTACT if result.intact else LedgerCheckStatus.BROKEN
    check.checked = result.head.event_count
    check.head_hash = result.head_hash
    check.last_event_id = result.last_event_id
    check.broken_event_id = result.broken_event_id
    check.expected_hash = result.expected_hash
    check.found_hash = result.found_hash
    check.problem = result.problem
    check.heads_compared = result.heads_compared
    check.head_signature = ledger_head_signature(result.head) if result.intact else ""


def ledger_check_run(
    *,
    check: LedgerCheck,
    every_anchor: bool = False,
    batch_size: int = 5000,
    on_mismatch: Callable[[Mismatch], None] | None = None,
) -> LedgerCheck:
    """Verify the whole chain against the heads recorded before it, reconcile the governed rows, record both.

    ``every_anchor`` compares every anchor in the sink rather than only the newest; ``on_mismatch`` sees each
    mismatch as it is found (the command prints them).
    """
    check.status = LedgerCheckStatus.RUNNING
    check.started_at = timezone.now()
    check.save(update_fields=["status", "started_at"])
    try:
        anchored: list[LedgerHead] = []
        heads, failure = _recorded_heads(excluding=check.pk)
        if failure is None:
            anchored, failure = _anchor_heads(every_anchor=every_anchor)
        result = failure or ledger_verify(batch_size=batch_size, heads=heads + anchored)
        reconciliation = governed_rows_reconcile(batch_size=batch_size, keep=MISMATCHES_KEPT, on_mismatch=on_mismatch)
    except Exception as exc:
        check.status = LedgerCheckStatus.FAILED
        check.problem = f"{type(exc).__name__}: {exc}"
        check.finished_at = timezone.now()
        check.save(update_fields=["status", "problem", "finished_at"])
        raise
    _record(check, result)
    check.rows_reconciled = reconciliation.rows_total
    check.mismatch_count = reconciliation.mismatch_count
    check.mismatches = [mismatch.as_dict() for mismatch in reconciliation.mismatches]
    check.unrecorded = {table: count for table, count in reconciliation.unrecorded.items() if count}
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
    if reconciliation.mismatch_count:
        logger.error(
            "Ledger verification %s: %s governed row field(s) differ from their latest ledger event, first: %s",
            check.pk,
            reconciliation.mismatch_count,
            reconciliation.mismatches[0],
        )
    return check


def ledger_check_mismatches(check: LedgerCheck) -> list[Mismatch]:
    """The mismatches a verification kept, as objects."""
    return [Mismatch(**row) for row in check.mismatches]


@dataclass(frozen=True)
class AnchorRun:
    """One run of the anchor task: the anchor it appended (None if the head had not moved or the chain broke)."""

    verification: LedgerVerification
    anchor: Anchor | None = None
    check: LedgerCheck | None = None


def _record_broken_anchor_run(result: LedgerVerification) -> LedgerCheck:
    """A BROKEN verification for the console, once per distinct break (the task runs every minute)."""
    latest = LedgerCheck.objects.order_by("-id").first()
    if (
        latest is not None
        and latest.status == LedgerCheckStatus.BROKEN
        and (latest.broken_event_id, latest.problem) == (result.broken_event_id, result.problem)
    ):
        return latest
    now = timezone.now()
    check = LedgerCheck(origin=LedgerCheckOrigin.ANCHOR, started_at=now, finished_at=now)
    _record(check, result)
    check.save()
    return check


def ledger_anchor_run(*, batch_size: int = 5000, now: datetime | None = None) -> AnchorRun:
    """Verify the events since the newest anchor and append a signed anchor of the new head.

    The newest anchor must still hold (its event, hash, seal and position) before anything after it is
    verified; the first anchor ever follows a full verification against the recorded heads. When the chain
    does not hold, no anchor is appended and a BROKEN verification is recorded for the console.
    """
    sink = anchor_sink()
    with sink.lock():
        latest: Anchor | None = None
        try:
            latest = sink.latest()
        except AnchorFormatError as exc:
            result = _broken(
                LedgerHead(event_count=0, last_event_id=None, head_hash="", label=sink.description),
                f"{exc} ({sink.description}): the anchor file was edited or cut short",
            )
        else:
            if latest is not None and not latest.signature_valid:
                result = _broken(
                    latest.head,
                    f"{latest.name} in {sink.description} does not carry this deployment's signature "
                    "(the anchor file was edited, or signed with another key)",
                )
            elif latest is not None:
                result = ledger_verify_since(head=latest.head, batch_size=batch_size)
            else:
                heads, failure = _recorded_heads(excluding=None)
                result = failure or ledger_verify(batch_size=batch_size, heads=heads)
        if not result.intact:
            check = _record_broken_anchor_run(result)
            logger.error("Ledger anchor not appended: broken at event %s (%s)", result.broken_event_id, result.problem)
            return AnchorRun(verification=result, check=check)
        if result.event_count == 0 or (latest is not None and result.event_count == latest.event_count):
            return AnchorRun(verification=result)
        anchor = anchor_make(head=result.head, at=now or timezone.now())
        sink.append(anchor)
    return AnchorRun(verification=result, anchor=anchor)
