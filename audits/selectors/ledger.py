"""Reads of the ledger for the console: verification runs, the signed head document, and events by decision."""

from collections import defaultdict
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from audits.choices import LedgerCheckStatus
from audits.ledger import ledger_head_sign
from audits.models import DecisionEvent, LedgerCheck


def ledger_checks_recent(*, limit: int = 20) -> list[LedgerCheck]:
    return list(LedgerCheck.objects.select_related("requested_by")[:limit])


def ledger_check_latest_intact() -> LedgerCheck | None:
    return LedgerCheck.objects.filter(status=LedgerCheckStatus.INTACT).order_by("-finished_at", "-id").first()


def ledger_head_document(*, check: LedgerCheck, exported_by: AbstractBaseUser, now: datetime | None = None) -> dict:
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
