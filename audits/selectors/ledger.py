"""Reads of the ledger for the console: verification runs, the signed head document, and events by decision."""

import hmac
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Subquery
from django.utils import timezone

from audits.choices import LedgerCheckOrigin, LedgerCheckStatus
from audits.ledger import LedgerHead, ledger_head_sign, ledger_head_signature
from audits.models import DecisionEvent, LedgerCheck
from hitl_platform.types import RequestUser


def ledger_checks_recent(*, limit: int = 20) -> list[LedgerCheck]:
    return list(LedgerCheck.objects.select_related("requested_by")[:limit])


def ledger_check_latest_intact() -> LedgerCheck | None:
    return LedgerCheck.objects.filter(status=LedgerCheckStatus.INTACT).order_by("-finished_at", "-id").first()


def ledger_check_latest_reconciliation() -> LedgerCheck | None:
    """The newest finished full verification (the anchor task does not reconcile): its mismatches are current."""
    return (
        LedgerCheck.objects.filter(status__in=[LedgerCheckStatus.INTACT, LedgerCheckStatus.BROKEN])
        .exclude(origin=LedgerCheckOrigin.ANCHOR)
        .order_by("-finished_at", "-id")
        .first()
    )


# A chain nobody has verified for longer than this is not known to be intact: the schedule verifies it nightly.
LEDGER_CHECK_STALE_AFTER = timedelta(days=1)

_ORIGIN_IN_WORDS: dict[str, str] = {
    LedgerCheckOrigin.CONSOLE: "the console",
    LedgerCheckOrigin.SCHEDULE: "the schedule",
    LedgerCheckOrigin.COMMAND: "manage.py verify_ledger",
    LedgerCheckOrigin.ANCHOR: "the anchor task",
}


@dataclass(frozen=True)
class LedgerStanding:
    """The newest finished verification as the dashboard headlines it, with the mismatches of the newest
    reconciliation (the anchor task verifies without reconciling, so its runs carry none of their own)."""

    check: LedgerCheck | None
    mismatch_count: int
    stale: bool

    @property
    def verified_by(self) -> str:
        if self.check is None:
            return ""
        if self.check.requested_by is not None:
            return self.check.requested_by.get_username()
        return _ORIGIN_IN_WORDS.get(self.check.origin, self.check.get_origin_display())

    @property
    def intact(self) -> bool:
        return self.check is not None and self.check.status == LedgerCheckStatus.INTACT

    @property
    def needs_attention(self) -> bool:
        """Never verified, broken, failed to run, rows differing from the ledger, or not verified for a day."""
        return not self.intact or bool(self.mismatch_count) or self.stale


def ledger_standing(*, now: datetime | None = None) -> LedgerStanding:
    """The newest finished verification (intact, broken or failed to run) and the current mismatch count.

    One query: the newest reconciliation's count is an uncorrelated subquery of it.
    """
    reconciled = (
        LedgerCheck.objects.filter(status__in=[LedgerCheckStatus.INTACT, LedgerCheckStatus.BROKEN])
        .exclude(origin=LedgerCheckOrigin.ANCHOR)
        .order_by("-finished_at", "-id")
        .values("mismatch_count")[:1]
    )
    check = (
        LedgerCheck.objects.filter(finished_at__isnull=False)
        .exclude(status__in=[LedgerCheckStatus.QUEUED, LedgerCheckStatus.RUNNING])
        .select_related("requested_by")
        .defer("mismatches", "unrecorded")
        .annotate(reconciled_mismatch_count=Subquery(reconciled))
        .order_by("-finished_at", "-id")
        .first()
    )
    if check is None:
        return LedgerStanding(check=None, mismatch_count=0, stale=True)
    assert check.finished_at is not None, "selected by finished_at__isnull=False"
    return LedgerStanding(
        check=check,
        mismatch_count=check.reconciled_mismatch_count or 0,
        stale=(now or timezone.now()) - check.finished_at > LEDGER_CHECK_STALE_AFTER,
    )


def _signed_head(count: int, last_event_id: int | None, head_hash: str, signature: str) -> LedgerHead | None:
    head = LedgerHead(event_count=count, last_event_id=last_event_id, head_hash=head_hash)
    return head if hmac.compare_digest(signature, ledger_head_signature(head)) else None


def ledger_head_offered() -> LedgerCheck | None:
    """The head the console offers as an anchor: the newest intact verification's, and only while it holds.

    None when a verification finished since found the chain broken, when the head's signature is not this
    deployment's (a row written in the database), or when it contradicts an earlier recorded head (fewer
    events than one, or an earlier head's event no longer has its hash). Four queries.
    """
    latest = ledger_check_latest_intact()
    if latest is None or latest.finished_at is None:
        return None
    if LedgerCheck.objects.filter(status=LedgerCheckStatus.BROKEN, finished_at__gte=latest.finished_at).exists():
        return None
    offered = _signed_head(latest.checked, latest.last_event_id, latest.head_hash, latest.head_signature)
    if offered is None:
        return None
    earlier = [
        _signed_head(*row)
        for row in LedgerCheck.objects.filter(status=LedgerCheckStatus.INTACT, finished_at__lte=latest.finished_at)
        .exclude(pk=latest.pk)
        .values_list("checked", "last_event_id", "head_hash", "head_signature")
    ]
    heads = [head for head in [offered, *earlier] if head is not None and head.event_count > 0]
    if any(head.event_count > offered.event_count for head in heads):
        return None
    hashes = dict(DecisionEvent.objects.filter(pk__in={head.last_event_id for head in heads}).values_list("id", "hash"))
    # A head without a last event cannot be one of the chain's.
    if any(head.last_event_id is None or hashes.get(head.last_event_id) != head.head_hash for head in heads):
        return None
    return latest


def ledger_head_document(*, check: LedgerCheck, exported_by: RequestUser, now: datetime | None = None) -> dict:
    """The head of an intact verification, signed and stamped: the anchor to keep outside the database."""
    document = {
        "ledger": "hitl_platform decision ledger",
        "head_hash": check.head_hash,
        "event_count": check.checked,
        "last_event_id": check.last_event_id,
        "verified_at": check.finished_at.isoformat() if check.finished_at else None,
        "verification_id": check.pk,
        "exported_at": (now or timezone.now()).isoformat(),
        "exported_by": exported_by.get_username(),
        "algorithm": "sha256 chain over canonical JSON; signature HMAC-SHA256",
    }
    document["signature"] = ledger_head_sign(document)
    return document


def ledger_events_for_decisions(decision_ids: list[int]) -> dict[int, list[DecisionEvent]]:
    """The ledger events of these decisions (made, reversed...), in chain order: one indexed query."""
    events = DecisionEvent.objects.filter(
        object_type="reviews.decision", object_id__in=[str(pk) for pk in decision_ids]
    ).only("id", "event_type", "object_id", "hash", "previous_hash")
    by_decision: dict[int, list[DecisionEvent]] = defaultdict(list)
    for event in events.order_by("id"):
        by_decision[int(event.object_id)].append(event)
    return by_decision


def ledger_head_now() -> tuple[int | None, str]:
    """The id and hash of the newest event (unverified): recorded in exports to date them in the chain."""
    head = DecisionEvent.objects.order_by("-id").values_list("id", "hash").first()
    return head if head else (None, "")
